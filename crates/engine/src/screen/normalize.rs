//! Text as the rules read it: a list of words, each folded to one plain spelling, whatever
//! the writer did to slip past a word list.
//!
//! In order: Unicode compatibility forms are folded (NFKC: full-width and styled letters),
//! invisible characters dropped (zero-width spaces and joiners, soft hyphens), look-alike
//! letters of other scripts mapped to Latin (Cyrillic `е`, Greek `α`), diacritics stripped,
//! case folded; words split at spaces and hyphens, other punctuation inside a word dropped
//! (`ex.ter.mi.nate`, `y/o`), digits and symbols read as letters in words that mix them
//! (`v3rm1n`), runs of single letters joined (`v e r m i n`), and repeated letters squeezed
//! (`verrrmin`, and `immigrants` as `imigrants`, so both sides of a comparison agree).

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// One word of a text, as the rules compare it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    /// Folded (see [`fold_word`]).
    pub text: String,
    /// Written with a letter stretched (`verrrmin`): compared with repeated letters squeezed.
    pub stretched: bool,
    /// Inside quotation marks: mentioned, not used.
    pub quoted: bool,
    /// Written in digits only (`12`, `1945`).
    pub number: bool,
}

/// Characters that change nothing a reader sees.
fn invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}' | '\u{034F}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}'
    )
}

/// A letter of another script that looks like a Latin one (the common cases of Unicode's
/// confusables table, lowercase; text is lowercased after this).
fn latin_look_alike(c: char) -> Option<char> {
    Some(match c {
        'а' | 'А' | 'α' | 'Α' => 'a',
        'в' | 'В' | 'β' | 'Β' => 'b',
        'с' | 'С' | 'ς' => 'c',
        'е' | 'Е' | 'ё' | 'ε' | 'Ε' => 'e',
        'н' | 'Н' | 'η' | 'Η' => 'h',
        'і' | 'І' | 'ї' | 'ι' | 'Ι' => 'i',
        'ј' | 'Ј' => 'j',
        'к' | 'К' | 'κ' | 'Κ' => 'k',
        'м' | 'М' | 'Μ' => 'm',
        'п' => 'n',
        'о' | 'О' | 'ο' | 'Ο' | 'σ' => 'o',
        'р' | 'Р' | 'ρ' | 'Ρ' => 'p',
        'ѕ' | 'Ѕ' => 's',
        'т' | 'Т' | 'τ' | 'Τ' => 't',
        'υ' | 'μ' => 'u',
        'ν' | 'Ν' => 'v',
        'ш' | 'ω' => 'w',
        'х' | 'Х' | 'χ' | 'Χ' => 'x',
        'у' | 'У' | 'γ' | 'Υ' => 'y',
        'Ζ' => 'z',
        _ => return None,
    })
}

/// What a digit or symbol stands for in a word that mixes them with letters.
fn leet(c: char) -> Option<&'static str> {
    Some(match c {
        '0' => "o",
        '1' | '!' | '|' => "i",
        '3' => "e",
        '4' | '@' => "a",
        '5' | '$' => "s",
        '7' => "t",
        '8' => "ate",
        '9' => "g",
        _ => return None,
    })
}

fn is_quote(c: char) -> bool {
    matches!(
        c,
        '"' | '“' | '”' | '„' | '«' | '»' | '‘' | '’' | '\'' | '`'
    )
}

/// The text, folded character by character: compatibility forms, invisible characters,
/// look-alikes, diacritics and case.
fn fold_chars(text: &str) -> String {
    let composed: String = text.nfkc().filter(|c| !invisible(*c)).collect();
    let latin: String = composed
        .chars()
        .map(|c| latin_look_alike(c).unwrap_or(c))
        .collect();
    latin
        .nfd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect()
}

/// A word's own spelling, folded: symbols read as letters where the word mixes them with
/// letters, other punctuation dropped, a letter written three or more times in a row once.
pub fn fold_word(raw: &str) -> String {
    let has_letter = raw.chars().any(char::is_alphabetic);
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        if c.is_alphabetic() || (c.is_ascii_digit() && !has_letter) {
            out.push(c);
        } else if let Some(letters) = leet(c).filter(|_| has_letter) {
            out.push_str(letters);
        } else if c == '*' && has_letter {
            // A masked letter (`f*ggot`): kept, and matched as any one letter.
            out.push('*');
        }
    }
    unstretch(&out)
}

/// A letter written three or more times in a row, once (`verrrmin`); doubled letters stay, so
/// `Niger` and a slur it resembles stay apart.
fn unstretch(word: &str) -> String {
    let chars: Vec<char> = word.chars().collect();
    let mut out = String::with_capacity(word.len());
    let mut i = 0;
    while i < chars.len() {
        let run = chars[i..].iter().take_while(|c| **c == chars[i]).count();
        let keep = if run >= 3 && !chars[i].is_ascii_digit() {
            1
        } else {
            run
        };
        out.extend(std::iter::repeat_n(chars[i], keep));
        i += run;
    }
    out
}

/// Whether a word as written stretches a letter (three or more in a row).
fn stretched(raw: &str) -> bool {
    let chars: Vec<char> = raw.chars().filter(|c| c.is_alphabetic()).collect();
    chars.windows(3).any(|w| w[0] == w[1] && w[1] == w[2])
}

/// Runs of one letter as a single letter: how a stretched word (`killll`) is compared.
pub fn squeeze(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    let mut last = None;
    for c in word.chars() {
        if Some(c) != last || c.is_ascii_digit() {
            out.push(c);
        }
        last = Some(c);
    }
    out
}

/// The words of `text` as the rules read them.
pub fn words(text: &str) -> Vec<Word> {
    let folded = fold_chars(text);
    let mut words = Vec::new();
    let mut quoted = false;
    for token in folded.split(|c: char| c.is_whitespace() || matches!(c, '-' | '–' | '—' | '_'))
    {
        if token.is_empty() {
            continue;
        }
        if !token.chars().any(char::is_alphanumeric) {
            // A quotation mark standing alone, or punctuation.
            if token.contains(is_quote) {
                quoted = !quoted;
            }
            continue;
        }
        let opens = token.starts_with(is_quote);
        // A closing quote after the word (`'vermin'`, `vermin",`), not an apostrophe inside it.
        let core_end = token.trim_end_matches(|c: char| !c.is_alphanumeric() && c != '*');
        let closes = token[core_end.len()..].contains(is_quote);
        if opens {
            quoted = !quoted;
        }
        let text = fold_word(token);
        if !text.is_empty() {
            let number = text.chars().all(|c| c.is_ascii_digit());
            words.push(Word {
                stretched: stretched(token),
                text,
                quoted,
                number,
            });
        }
        // A closing mark without an open quotation is an apostrophe (`migrants'`).
        if closes && quoted {
            quoted = false;
        }
    }
    join_single_letters(words)
}

/// `v e r m i n` as `vermin`: three or more one-letter words in a row are one word.
fn join_single_letters(words: Vec<Word>) -> Vec<Word> {
    let mut out: Vec<Word> = Vec::with_capacity(words.len());
    let mut run: Vec<Word> = Vec::new();
    let flush = |run: &mut Vec<Word>, out: &mut Vec<Word>| {
        if run.len() >= 3 {
            let joined: String = run.iter().map(|w| w.text.as_str()).collect();
            out.push(Word {
                text: unstretch(&joined),
                stretched: stretched(&joined),
                quoted: run.iter().any(|w| w.quoted),
                number: false,
            });
        } else {
            out.append(run);
        }
        run.clear();
    };
    for word in words {
        if word.text.chars().count() == 1 && !word.number {
            run.push(word);
        } else {
            flush(&mut run, &mut out);
            out.push(word);
        }
    }
    flush(&mut run, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(text: &str) -> Vec<String> {
        words(text).into_iter().map(|w| w.text).collect()
    }

    #[test]
    fn every_disguise_folds_to_the_plain_word() {
        for disguised in [
            "vermin",
            "VERMIN",
            "v3rm1n",
            "v e r m i n",
            "v-e-r-m-i-n",
            "v_e_r_m_i_n",
            "ver\u{200B}min",
            "vеrmin", // Cyrillic е
            "ｖｅｒｍｉｎ",
            "vérmin",
            "verrrrmin",
            "ver.min",
        ] {
            assert_eq!(texts(disguised), ["vermin"], "{disguised:?}");
        }
        assert_eq!(texts("Gаy pеoplе"), ["gay", "people"]);
        assert_eq!(texts("subhumαn"), ["subhuman"]);
    }

    #[test]
    fn numbers_stay_numbers_and_ordinary_words_stay_whole() {
        let folded = words("In 1945, 12-year-olds didn't vote.");
        let texts: Vec<&str> = folded.iter().map(|w| w.text.as_str()).collect();
        assert_eq!(texts, ["in", "1945", "12", "year", "olds", "didnt", "vote"]);
        assert!(folded[1].number && folded[2].number && !folded[3].number);
    }

    #[test]
    fn quoted_words_are_marked_as_mentioned() {
        let folded = words("Is it wrong to call migrants 'vermin' or \"rats\"? Yes.");
        let quoted: Vec<&str> = folded
            .iter()
            .filter(|w| w.quoted)
            .map(|w| w.text.as_str())
            .collect();
        assert_eq!(quoted, ["vermin", "rats"]);
        let plain = words("Niger nigger immigrants killll");
        let texts: Vec<&str> = plain.iter().map(|w| w.text.as_str()).collect();
        assert_eq!(texts, ["niger", "nigger", "immigrants", "kil"]);
        assert!(!plain[0].stretched && plain[3].stretched);
        let plural = words("the migrants' tents are vermin");
        assert!(plural.iter().all(|w| !w.quoted), "{plural:?}");
    }
}
