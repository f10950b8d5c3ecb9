//! The claim check: figures (numbers, percentages, money, years, months) and quoted phrases
//! in a speech, compared with what supports them. What nothing supports is listed for readers
//! and given to the judge.
//!
//! It is a lenient, lexical check. Figures match across notations — "$5.5 billion" and
//! "$5.5B", "6000", "6,000+" and "six thousand", "October 2024" and "2024-10", "12,000 to
//! 15,000" and "12,000-15,000" — but small counts (below 10, unmarked) are not checked, since
//! they are mostly figures of speech ("two rounds", "a 3-point plan"). A quotation is
//! supported by the story, by the opponent's speech it answers, or by the speaker's own
//! documented lines (real quotations in `sample_lines`, and `signature_phrases`).

use serde::{Deserialize, Serialize};

use crate::persona::Persona;

/// The story's figures and words, ready to check speeches against.
pub struct ClaimChecker {
    figures: Vec<(Kind, f64)>,
    words: String,
}

/// What a speech claims, checked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Checked {
    /// Figures and quotations nothing supports, as written, in order, each once.
    pub unsupported: Vec<String>,
    /// Quotations that something supports, with what.
    pub quotes: Vec<Quote>,
}

/// A quotation in a speech and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Quote {
    pub text: String,
    pub source: QuoteSource,
    /// For a documented line: where it was said (the text after `— ` in `sample_lines`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// What supports a quotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum QuoteSource {
    /// The story says it.
    Story,
    /// The opponent's speech this one answers says it.
    Opponent,
    /// The speaker's own documented line or signature phrase.
    Documented,
}

/// What else may support a speech's quotations.
#[derive(Debug, Clone, Copy, Default)]
pub struct QuoteContext<'a> {
    /// The speaker, whose documented lines they may quote.
    pub speaker: Option<&'a Persona>,
    /// The opponent's speech this one answers (a rebuttal).
    pub answering: Option<&'a str>,
}

/// What kind of quantity a figure is: figures of different kinds never support each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A count, amount, percentage or year.
    Number,
    /// A month of a year, as `year * 12 + month`.
    Month,
}

/// A figure found in a text.
#[derive(Debug, Clone, PartialEq)]
struct Figure {
    /// As written, e.g. "$5.5 billion".
    text: String,
    /// Where it is written, in bytes.
    span: (usize, usize),
    kind: Kind,
    value: f64,
    /// Marked as money, a percentage or a scale word: always worth checking.
    marked: bool,
    integer: bool,
}

impl ClaimChecker {
    pub fn new(story_text: &str) -> ClaimChecker {
        ClaimChecker {
            figures: figures(story_text)
                .into_iter()
                .map(|f| (f.kind, f.value))
                .collect(),
            words: normalize_words(story_text),
        }
    }

    /// The figures and quotations in `speech` that the story does not support.
    pub fn unsupported(&self, speech: &str) -> Vec<String> {
        self.check(speech, QuoteContext::default()).unsupported
    }

    /// Checks a speech's figures against the story, and its quotations against the story,
    /// the speech it answers and the speaker's documented lines.
    pub fn check(&self, speech: &str, context: QuoteContext<'_>) -> Checked {
        let mut checked = Checked::default();
        let mut add = |item: String| {
            if !checked.unsupported.contains(&item) {
                checked.unsupported.push(item);
            }
        };
        let quoted = quotation_spans(speech);
        let found = figures(speech);
        let months: Vec<(usize, usize)> = found
            .iter()
            .filter(|f| f.kind == Kind::Month)
            .map(|f| f.span)
            .collect();
        let inside = |span: (usize, usize), of: &[(usize, usize)]| {
            of.iter().any(|&(s, e)| s <= span.0 && span.1 <= e)
        };
        for figure in found {
            // A quotation is checked whole; a month's year is checked with its month.
            if inside(figure.span, &quoted)
                || (figure.kind == Kind::Number && inside(figure.span, &months))
            {
                continue;
            }
            let worth_checking = figure.marked
                || !figure.integer
                || figure.value >= 10.0
                || figure.kind == Kind::Month;
            let supported = self
                .figures
                .iter()
                .any(|&(kind, v)| kind == figure.kind && same_value(v, figure.value));
            if worth_checking && !supported {
                add(figure.text);
            }
        }
        let answering = context.answering.map(normalize_words);
        for quote in quotations(speech) {
            let normalized = normalize_words(&quote);
            let found = if self.words.contains(&normalized) {
                Some((QuoteSource::Story, None))
            } else if answering.as_ref().is_some_and(|a| a.contains(&normalized)) {
                Some((QuoteSource::Opponent, None))
            } else {
                context
                    .speaker
                    .and_then(|p| documented(p, &normalized))
                    .map(|reference| (QuoteSource::Documented, reference))
            };
            match found {
                Some((source, reference)) => {
                    let quote = Quote {
                        text: quote,
                        source,
                        reference,
                    };
                    if !checked.quotes.contains(&quote) {
                        checked.quotes.push(quote);
                    }
                }
                None => add(format!("\"{quote}\"")),
            }
        }
        checked
    }
}

/// Where the speaker documentedly said `normalized` (words as [`normalize_words`] gives
/// them): a real quotation of `sample_lines` (`text — source`), or a signature phrase.
/// Lines written only in their style (`(in style) …`) support nothing.
fn documented(persona: &Persona, normalized: &str) -> Option<Option<String>> {
    for line in &persona.sample_lines {
        if let Some((text, source)) = line.rsplit_once(" — ")
            && !line.trim_start().starts_with("(in style)")
            && normalize_words(text).contains(normalized)
        {
            return Some(Some(source.trim().to_string()));
        }
    }
    persona
        .signature_phrases
        .iter()
        .any(|phrase| normalize_words(phrase).contains(normalized))
        .then_some(None)
}

fn same_value(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

const SCALES: &[(&str, f64)] = &[
    ("thousand", 1e3),
    ("million", 1e6),
    ("billion", 1e9),
    ("trillion", 1e12),
    ("tn", 1e12),
    ("bn", 1e9),
    ("k", 1e3),
    ("m", 1e6),
    ("b", 1e9),
];

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// Finds the figures of a text: written in digits, in words, and months of years.
fn figures(text: &str) -> Vec<Figure> {
    let mut out = digit_figures(text);
    out.extend(word_figures(text));
    out.extend(months(text));
    out
}

/// Figures written in digits.
fn digit_figures(text: &str) -> Vec<Figure> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let char_at = |i: usize| chars.get(i).map(|&(_, c)| c);
    let byte_at = |i: usize| chars.get(i).map_or(text.len(), |&(b, _)| b);
    // Digits from `from` on, across thousands separators.
    let run_of_digits = |from: usize| {
        (from..)
            .take_while(|&k| {
                char_at(k).is_some_and(|c| {
                    c.is_ascii_digit()
                        || (c == ',' && char_at(k + 1).is_some_and(|d| d.is_ascii_digit()))
                })
            })
            .filter(|&k| char_at(k).is_some_and(|c| c.is_ascii_digit()))
            .count()
    };
    let mut out: Vec<Figure> = Vec::new();
    // Where the last figure found ends, in bytes.
    let mut last_end = 0;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i].1;
        if !c.is_ascii_digit() {
            i += 1;
            continue;
        }
        // Skip digits glued to a word ("G7", "COVID-19") and the later parts of a date
        // ("2024-10-28"); the far end of a range ("12,000-15,000", "1975-1991") is a figure.
        let prev = i.checked_sub(1).and_then(char_at);
        let prev2 = i.checked_sub(2).and_then(char_at);
        let range_end =
            prev == Some('-') && prev2.is_some_and(|p| p.is_ascii_digit()) && run_of_digits(i) >= 3;
        let glued = prev.is_some_and(|p| p.is_alphanumeric() || p == '_')
            || (prev == Some('-') && prev2.is_some_and(|p| p.is_alphanumeric()) && !range_end)
            || (prev == Some('.') && prev2.is_some_and(|p| p.is_ascii_digit()));
        let start = if matches!(prev, Some('$' | '€' | '£')) {
            i - 1
        } else {
            i
        };
        let money = start < i;
        let mut j = i;
        let mut digits = String::new();
        let mut integer = true;
        while let Some(c) = char_at(j) {
            if c.is_ascii_digit() {
                digits.push(c);
                j += 1;
            } else if c == ','
                && (1..=3).all(|k| char_at(j + k).is_some_and(|d| d.is_ascii_digit()))
                && !char_at(j + 4).is_some_and(|d| d.is_ascii_digit())
            {
                j += 1; // a thousands separator
            } else if c == '.' && integer && char_at(j + 1).is_some_and(|d| d.is_ascii_digit()) {
                digits.push('.');
                integer = false;
                j += 1;
            } else {
                break;
            }
        }
        if glued {
            i = j;
            continue;
        }
        let mut value: f64 = digits.parse().unwrap_or(0.0);
        let mut end = j;
        let mut marked = money;
        if char_at(end) == Some('+') {
            end += 1;
        }
        // A suffix: "%", "percent", or a scale word, possibly after one space.
        let rest = &text[byte_at(end)..];
        let after_space = rest.strip_prefix(' ').unwrap_or(rest);
        let skipped = rest.len() - after_space.len();
        let mut scale = None;
        if rest.starts_with('%') {
            end += 1;
            marked = true;
        } else if let Some(word) = ["percent", "per cent"]
            .iter()
            .find(|w| starts_with_word(after_space, w))
        {
            end += skipped + word.len();
            marked = true;
        } else if let Some(&(word, factor)) = SCALES
            .iter()
            .find(|(w, _)| (skipped == 0 || w.len() > 2) && starts_with_word(after_space, w))
        {
            end += skipped + word.len();
            value *= factor;
            marked = true;
            scale = Some(factor);
        } else if starts_with_word(rest, "s") {
            end += 1; // a decade: "1990s"
        } else if rest.chars().next().is_some_and(|c| c.is_alphabetic()) {
            // "3rd", "15th": ordinals are not figures.
            i = j;
            continue;
        }
        // "12 to 15 thousand": the range's scale is its first figure's too.
        if let (Some(factor), Some(last)) = (scale, out.last_mut()) {
            let between = text.get(last_end..byte_at(start)).unwrap_or("");
            if is_range_connector(between) && !last.marked {
                last.value *= factor;
                last.marked = true;
            }
        }
        out.push(Figure {
            text: text[byte_at(start)..byte_at(end)].to_string(),
            span: (byte_at(start), byte_at(end)),
            kind: Kind::Number,
            value,
            marked,
            integer,
        });
        last_end = byte_at(end);
        i = end.max(j);
    }
    out
}

/// Whether the text between two figures makes them a range.
fn is_range_connector(between: &str) -> bool {
    matches!(between.trim(), "to" | "-" | "–" | "—" | "and")
}

/// Numbers written in words: "six thousand", "twenty-five", "a million".
fn word_figures(text: &str) -> Vec<Figure> {
    const UNITS: [&str; 20] = [
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
    ];
    const TENS: [&str; 8] = [
        "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
    ];
    let mut out: Vec<(Figure, Option<f64>)> = Vec::new();
    // (start byte, end byte, total, current, the last scale word's factor)
    let mut run: Option<(usize, usize, f64, f64, Option<f64>)> = None;
    let mut flush = |run: &mut Option<(usize, usize, f64, f64, Option<f64>)>| {
        if let Some((start, end, total, current, scale)) = run.take() {
            let figure = Figure {
                text: text[start..end].to_string(),
                span: (start, end),
                kind: Kind::Number,
                value: total + current,
                marked: scale.is_some(),
                integer: true,
            };
            out.push((figure, scale));
        }
    };
    let mut words: Vec<(usize, usize)> = Vec::new();
    // A break (an empty word): punctuation or a digit ends a number. One stands for a run.
    let brk = |words: &mut Vec<(usize, usize)>, i: usize| {
        if words.last().is_none_or(|&(s, e)| s != e) {
            words.push((i, i));
        }
    };
    let mut start = None;
    for (i, c) in text.char_indices() {
        if c.is_alphabetic() {
            start.get_or_insert(i);
        } else if let Some(s) = start.take() {
            words.push((s, i));
            if c != '-' && c != ' ' {
                brk(&mut words, i);
            }
        } else if c != ' ' && c != '-' {
            brk(&mut words, i);
        }
    }
    if let Some(s) = start {
        words.push((s, text.len()));
    }
    // Number words are ASCII: compared without case, no word needs lowercasing.
    let is = |word: &str, w: &str| word.eq_ignore_ascii_case(w);
    for (k, &(s, e)) in words.iter().enumerate() {
        let word = &text[s..e];
        if word.is_empty() {
            flush(&mut run);
            continue;
        }
        let unit = UNITS.iter().position(|w| is(word, w)).map(|v| v as f64);
        let tens = TENS
            .iter()
            .position(|w| is(word, w))
            .map(|v| (v as f64 + 2.0) * 10.0);
        let scale = SCALES[..4]
            .iter()
            .find(|(w, _)| is(word, w))
            .map(|&(_, f)| f);
        let next_is_scale = words
            .get(k + 1)
            .is_some_and(|&(s, e)| SCALES[..4].iter().any(|(w, _)| is(&text[s..e], w)));
        match (unit.or(tens), scale, &mut run) {
            (Some(v), _, Some((_, end, _, current, _))) => {
                *current += v;
                *end = e;
            }
            (Some(v), _, None) => run = Some((s, e, 0.0, v, None)),
            (None, _, Some((_, end, _, current, _))) if is(word, "hundred") => {
                *current *= 100.0;
                *end = e;
            }
            (None, Some(f), Some((_, end, total, current, scale))) => {
                *total += current.max(1.0) * f;
                *current = 0.0;
                *end = e;
                *scale = Some(f);
            }
            (None, Some(f), None)
                if k > 0 && {
                    let (ps, pe) = words[k - 1];
                    is(&text[ps..pe], "a") || is(&text[ps..pe], "one")
                } =>
            {
                let (ps, _) = words[k - 1];
                run = Some((ps, e, f, 0.0, Some(f)));
            }
            (None, _, Some(_))
                if is(word, "and")
                    && words.get(k + 1).is_some_and(|&(s, e)| {
                        let next = &text[s..e];
                        UNITS.iter().chain(&TENS).any(|w| is(next, w))
                    }) => {}
            _ if is(word, "a") && next_is_scale => {}
            _ => flush(&mut run),
        }
    }
    flush(&mut run);
    // "twelve to fifteen thousand": the range's scale is its first figure's too.
    for k in 1..out.len() {
        let (before, after) = out.split_at_mut(k);
        let (first, first_scale) = &mut before[k - 1];
        let (second, second_scale) = &after[0];
        let between = text.get(first.span.1..second.span.0).unwrap_or("");
        if let (None, Some(factor)) = (*first_scale, *second_scale)
            && is_range_connector(between)
        {
            first.value *= factor;
            first.marked = true;
            *first_scale = Some(factor);
        }
    }
    out.into_iter().map(|(figure, _)| figure).collect()
}

/// Months of years: "October 2024", "Oct. 2024", "2024-10" (and "2024-10-28").
fn months(text: &str) -> Vec<Figure> {
    // Read in bytes, names compared without case: lowercasing the text would move the
    // offsets of letters that lowercase to more bytes ("İ"), and the spans with them.
    let bytes = text.as_bytes();
    let digits = |b: &[u8]| b.iter().all(u8::is_ascii_digit);
    let number = |b: &[u8]| b.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0'));
    let mut out = Vec::new();
    // "2024-10": four digits, a hyphen, two digits from 01 to 12, not part of a longer number.
    for at in memchr::memchr_iter(b'-', bytes) {
        let year = at.checked_sub(4).and_then(|s| bytes.get(s..at));
        let month = bytes.get(at + 1..at + 3);
        let before_ok = at < 5 || !bytes[at - 5].is_ascii_alphanumeric();
        let after_ok = bytes.get(at + 3).is_none_or(|b| !b.is_ascii_digit());
        if let (Some(year), Some(month)) = (year, month)
            && before_ok
            && after_ok
            && digits(year)
            && digits(month)
            && (1..=12).contains(&number(month))
        {
            // Shown as written, with its day if it has one.
            let day = bytes
                .get(at + 3..at + 6)
                .filter(|d| d[0] == b'-' && digits(&d[1..]));
            let end = at + 3 + day.map_or(0, <[u8]>::len);
            out.push(month_figure(
                text,
                (at - 4, end),
                number(year),
                number(month),
            ));
        }
    }
    // "October 2024": a month's name (or its first three letters), then a year.
    let mut at = 0;
    while at < bytes.len() {
        let word_len = bytes[at..]
            .iter()
            .take_while(|b| b.is_ascii_alphabetic())
            .count();
        if word_len == 0 {
            at += 1;
            continue;
        }
        // A name's first three letters or more.
        let word = &text[at..at + word_len];
        let month = MONTHS.iter().position(|name| {
            (3..=name.len()).contains(&word.len()) && name[..word.len()].eq_ignore_ascii_case(word)
        });
        if let Some(m) = month {
            let rest = &text[at + word_len..];
            let after = rest.trim_start_matches(['.', ',']).trim_start();
            let year = after.as_bytes().get(..4).filter(|y| digits(y));
            if let Some(year) = year
                && !after.as_bytes().get(4).is_some_and(u8::is_ascii_digit)
            {
                let end = text.len() - after.len() + 4;
                out.push(month_figure(text, (at, end), number(year), m as u32 + 1));
            }
        }
        at += word_len;
    }
    out
}

fn month_figure(text: &str, span: (usize, usize), year: u32, month: u32) -> Figure {
    Figure {
        text: text[span.0..span.1].to_string(),
        span,
        kind: Kind::Month,
        value: f64::from(year * 12 + month),
        marked: true,
        integer: true,
    }
}

fn word_continues(s: &str, at: usize) -> bool {
    s[at..].chars().next().is_some_and(|c| c.is_alphanumeric())
}

/// Whether `s` starts with the ASCII word `word`, in any case, as a whole word.
fn starts_with_word(s: &str, word: &str) -> bool {
    s.as_bytes()
        .get(..word.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(word.as_bytes()))
        && !word_continues(s, word.len())
}

/// Quoted phrases of two words or more, in straight or curly double quotes.
fn quotations(text: &str) -> Vec<String> {
    quotation_spans(text)
        .into_iter()
        .map(|(s, e)| text[s..e].trim().to_string())
        .collect()
}

/// Where the quoted phrases of [`quotations`] are, in bytes.
fn quotation_spans(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut open: Option<usize> = None;
    for (i, c) in text.char_indices() {
        match (c, open) {
            ('“', _) => open = Some(i + c.len_utf8()),
            ('"', None) => open = Some(i + 1),
            ('”' | '"', Some(start)) => {
                let words = text[start..i].split_whitespace().count();
                if (2..=60).contains(&words) {
                    out.push((start, i));
                }
                open = None;
            }
            _ => {}
        }
    }
    out
}

/// Lowercase words separated by single spaces, punctuation dropped, so that quotations match
/// whatever their punctuation and line breaks.
fn normalize_words(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push(' ');
    for c in text.chars() {
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
        } else if c == '\'' || c == '’' {
            // "Pyongyang's" and "Pyongyang’s" are the same word
        } else if !out.ends_with(' ') {
            out.push(' ');
        }
    }
    if !out.ends_with(' ') {
        out.push(' ');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const STORY: &str = "About 12,000 to 15,000 soldiers deployed in October 2024. \
        6,000+ were killed or wounded. Arms worth $5.5B were shipped; 2.97 million troops \
        served in 1950. Kim endorsed Russia's \"sacred fight\" against the West. Casualties \
        rose 40%.";

    #[test]
    fn figures_in_the_story_are_supported_in_any_notation() {
        let checker = ClaimChecker::new(STORY);
        let speech = "Some 6000 dead or hurt, $5.5 billion in arms, 15 thousand men, \
            2.97m volunteers in 1950, a 40 percent rise, and a 2024 deployment.";
        assert_eq!(checker.unsupported(speech), Vec::<String>::new());
    }

    #[test]
    fn figures_and_quotes_not_in_the_story_are_listed_once_as_written() {
        let checker = ClaimChecker::new(STORY);
        let speech = "They lost 20,000 men, $9 billion, 75% of their shells — 20,000! \
            Kim called it a \"sacred fight\" and a “war of liberation”; 3 ships sank in the 3rd week of 1943.";
        assert_eq!(
            checker.unsupported(speech),
            vec![
                "20,000",
                "$9 billion",
                "75%",
                "1943",
                "\"war of liberation\""
            ]
        );
    }

    #[test]
    fn months_are_found_where_they_are_written_after_any_letters() {
        // "İ" lowercases to three bytes from two: spans come from the text as written.
        let checker = ClaimChecker::new(STORY);
        let speech =
            "İstanbul, İzmir: in NOV. 2023 and 2023-11-05, not in October 2024 or oct 2024.";
        assert_eq!(checker.unsupported(speech), vec!["2023-11-05", "NOV. 2023"]);
    }

    #[test]
    fn number_words_and_suffixes_are_read_in_any_case() {
        let checker = ClaimChecker::new(STORY);
        let speech = "SIX THOUSAND fell, 40 Percent more, $5.5 Billion in arms; \
            Twenty-Five Thousand marched, 13 THOUSAND stayed.";
        assert_eq!(
            checker.unsupported(speech),
            vec!["13 THOUSAND", "Twenty-Five Thousand"]
        );
    }

    #[test]
    fn ignores_numbers_glued_to_words_and_date_parts() {
        let checker = ClaimChecker::new("A story about nothing in 2024.");
        assert_eq!(
            checker.unsupported("The G20 and COVID-19 met on 2024-10-28 in the 1990s"),
            vec!["1990s", "2024-10-28"],
            "a day of 2024 is more than a story that names only the year supports"
        );
    }
}
