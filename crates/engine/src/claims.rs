//! The claim check: figures (numbers, percentages, money, years) and quoted phrases in a
//! speech, compared with the story's text. What the story does not support is listed for
//! readers and given to the judge.
//!
//! It is a lenient, lexical check: "$5.5 billion" matches a story's "$5.5B" and "6000"
//! matches "6,000+", but numbers written as words and small counts (below 10) are not
//! checked, since they are mostly figures of speech ("two rounds", "a 3-point plan").

/// The story's figures and words, ready to check speeches against.
pub struct ClaimChecker {
    figures: Vec<f64>,
    words: String,
}

/// A figure found in a text.
#[derive(Debug, Clone, PartialEq)]
struct Figure {
    /// As written, e.g. "$5.5 billion".
    text: String,
    value: f64,
    /// Marked as money, a percentage or a scale word: always worth checking.
    marked: bool,
    integer: bool,
}

impl ClaimChecker {
    pub fn new(story_text: &str) -> ClaimChecker {
        ClaimChecker {
            figures: figures(story_text).into_iter().map(|f| f.value).collect(),
            words: normalize_words(story_text),
        }
    }

    /// The figures and quotations in `speech` that the story does not support, in order of
    /// appearance, each once.
    pub fn unsupported(&self, speech: &str) -> Vec<String> {
        let mut found: Vec<String> = Vec::new();
        let mut add = |item: String| {
            if !found.contains(&item) {
                found.push(item);
            }
        };
        for figure in figures(speech) {
            let worth_checking = figure.marked || !figure.integer || figure.value >= 10.0;
            if worth_checking && !self.figures.iter().any(|&v| same_value(v, figure.value)) {
                add(figure.text);
            }
        }
        for quote in quotations(speech) {
            let normalized = normalize_words(&quote);
            if !self.words.contains(&normalized) {
                add(format!("\"{quote}\""));
            }
        }
        found
    }
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

/// Finds the figures of a text.
fn figures(text: &str) -> Vec<Figure> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let char_at = |i: usize| chars.get(i).map(|&(_, c)| c);
    let byte_at = |i: usize| chars.get(i).map_or(text.len(), |&(b, _)| b);
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i].1;
        if !c.is_ascii_digit() {
            i += 1;
            continue;
        }
        // Skip digits glued to a word ("G7", "COVID-19") and the later parts of a date.
        let prev = i.checked_sub(1).and_then(char_at);
        let prev2 = i.checked_sub(2).and_then(char_at);
        let glued = prev.is_some_and(|p| p.is_alphanumeric() || p == '_')
            || (prev == Some('-') && prev2.is_some_and(|p| p.is_alphanumeric()))
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
        let rest: String = chars[end.min(chars.len())..]
            .iter()
            .take(12)
            .map(|&(_, c)| c)
            .collect();
        let lower = rest.to_lowercase();
        let after_space = lower.strip_prefix(' ').unwrap_or(&lower);
        let skipped = lower.len() - after_space.len();
        if lower.starts_with('%') {
            end += 1;
            marked = true;
        } else if let Some(word) = ["percent", "per cent"]
            .iter()
            .find(|w| after_space.starts_with(**w) && !word_continues(after_space, w.len()))
        {
            end += skipped + word.chars().count();
            marked = true;
        } else if let Some(&(word, scale)) = SCALES.iter().find(|(w, _)| {
            let spaced_ok = skipped == 0 || w.len() > 2;
            spaced_ok && after_space.starts_with(w) && !word_continues(after_space, w.len())
        }) {
            end += skipped + word.len();
            value *= scale;
            marked = true;
        } else if lower.starts_with('s') && !word_continues(&lower, 1) {
            end += 1; // a decade: "1990s"
        } else if lower.chars().next().is_some_and(|c| c.is_alphabetic()) {
            // "3rd", "15th": ordinals are not figures.
            i = j;
            continue;
        }
        out.push(Figure {
            text: text[byte_at(start)..byte_at(end)].to_string(),
            value,
            marked,
            integer,
        });
        i = end.max(j);
    }
    out
}

fn word_continues(s: &str, at: usize) -> bool {
    s[at..].chars().next().is_some_and(|c| c.is_alphanumeric())
}

/// Quoted phrases of two words or more, in straight or curly double quotes.
fn quotations(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut open: Option<usize> = None;
    for (i, c) in text.char_indices() {
        match (c, open) {
            ('“', _) => open = Some(i + c.len_utf8()),
            ('"', None) => open = Some(i + 1),
            ('”' | '"', Some(start)) => {
                let quote = text[start..i].trim();
                let words = quote.split_whitespace().count();
                if (2..=60).contains(&words) {
                    out.push(quote.to_string());
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
    fn ignores_numbers_glued_to_words_and_date_parts() {
        let checker = ClaimChecker::new("A story about nothing in 2024.");
        assert_eq!(
            checker.unsupported("The G20 and COVID-19 met on 2024-10-28 in the 1990s"),
            vec!["1990s"]
        );
    }
}
