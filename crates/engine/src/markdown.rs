//! A debate's transcript as a Markdown document, for readers to download and keep.
//!
//! Generated text is written as text: characters Markdown or HTML would read as markup are
//! escaped, so a speech cannot become a link, a heading or a tag in someone's viewer.

use std::fmt::Write;

use crate::transcript::{Speaker, Transcript, Winner};

/// The transcript as Markdown, headed by the story's title.
pub fn debate(transcript: &Transcript, story_title: &str) -> String {
    let t = transcript;
    let name = |speaker: Speaker| escape(&t.personas.get(speaker).name);
    let mut out = String::new();
    let _ = writeln!(out, "# {}\n", escape(&t.motion));
    let _ = writeln!(
        out,
        "A debate on *{}* between **{}** (side A) and **{}** (side B).\n",
        escape(story_title),
        name(Speaker::A),
        name(Speaker::B)
    );
    let _ = writeln!(
        out,
        "> Simulated: the speeches and the verdict were written by a language model ({}), \
         not by the people named.\n",
        escape(&t.provenance.model)
    );
    for round in &t.rounds {
        let kind = match round.round {
            1 => "Opening",
            _ => "Rebuttal",
        };
        let _ = writeln!(out, "## Round {} · {kind}\n", round.round);
        for turn in &round.turns {
            let _ = writeln!(out, "### {}\n", name(turn.speaker));
            let _ = writeln!(out, "{}\n", escape_block(turn.text.trim()));
            if turn.truncated {
                let _ = writeln!(out, "*(The speech reached its length limit.)*\n");
            }
            if !turn.unsupported.is_empty() {
                let claims: Vec<String> = turn.unsupported.iter().map(|c| escape(c)).collect();
                let _ = writeln!(out, "Not in the story: {}\n", claims.join("; "));
            }
        }
    }
    match &t.verdict {
        Some(v) => {
            let _ = writeln!(out, "## Verdict\n");
            let winner = match v.winner {
                Winner::A => format!("**{}** wins", name(Speaker::A)),
                Winner::B => format!("**{}** wins", name(Speaker::B)),
                Winner::Tie if v.contested => {
                    "**A tie**: contested, the judge's two passes disagreed".to_string()
                }
                Winner::Tie => "**A tie**".to_string(),
            };
            let _ = writeln!(
                out,
                "{winner}, by {:.1} points of 40 ({}).\n",
                v.margin,
                v.method.describe()
            );
            if let Some(notice) = v.low_confidence_notice() {
                let _ = writeln!(out, "*{notice}.*\n");
            }
            let _ = writeln!(
                out,
                "| Criterion | {} | {} |\n|---|---|---|",
                name(Speaker::A),
                name(Speaker::B)
            );
            let (a, b) = (&v.scores.a.criteria, &v.scores.b.criteria);
            for ((label, x), (_, y)) in a.named().into_iter().zip(b.named()) {
                let _ = writeln!(out, "| {label} | {x:.1} | {y:.1} |");
            }
            let _ = writeln!(
                out,
                "| **Total** | **{:.1}** | **{:.1}** |\n",
                v.scores.a.total, v.scores.b.total
            );
            let _ = writeln!(out, "{}\n", escape_block(v.rationale.trim()));
            let _ = writeln!(out, "Judged by {}.", escape(&t.provenance.judge_model));
        }
        None => {
            let reason = t
                .error
                .as_ref()
                .map_or_else(String::new, |e| format!(": {}", escape(&e.message)));
            let _ = writeln!(out, "*No verdict ({}){reason}.*", t.status.as_str());
        }
    }
    out
}

/// Text with Markdown's and HTML's markup characters escaped, on one line: a line break in a
/// name, a motion or a message would let what follows start a block of its own.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' | '\r' => out.push(' '),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '#' | '|' => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

/// Generated text of several lines (a speech, a rationale), escaped as [`escape`] does, and
/// each line's start too: no line becomes a list item, a code block, a fence, or, under a
/// line of `=` or `-`, a heading.
fn escape_block(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for (i, line) in text.lines().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        // Indentation would make a code block; prose loses nothing without it.
        let line = escape(line.trim_start());
        let digits = line.bytes().take_while(u8::is_ascii_digit).count();
        let (number, rest) = line.split_at(digits);
        out.push_str(number);
        if matches!(
            (digits, rest.bytes().next()),
            (0, Some(b'-' | b'+' | b'=' | b'~')) | (1.., Some(b'.' | b')'))
        ) {
            out.push('\\');
        }
        out.push_str(rest);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{escape, escape_block};

    #[test]
    fn markup_in_generated_text_is_escaped() {
        assert_eq!(
            escape("<script>[x](javascript:1) *b* # h | &"),
            "&lt;script&gt;\\[x\\](javascript:1) \\*b\\* \\# h \\| &amp;"
        );
        assert_eq!(escape("Plain words, 1.5%."), "Plain words, 1.5%.");
        assert_eq!(escape("Is it?\n- a list"), "Is it? - a list");
    }

    #[test]
    fn no_line_of_generated_text_starts_a_block() {
        assert_eq!(
            escape_block("A title\n===\n- one\n+ two\n1. three\n12) four\n    code\n~~~\n---"),
            "A title\n\\===\n\\- one\n\\+ two\n1\\. three\n12\\) four\ncode\n\\~~~\n\\---"
        );
        assert_eq!(
            escape_block("In 1940, 12 ships - and more - sailed.\nThen 3 more."),
            "In 1940, 12 ships - and more - sailed.\nThen 3 more."
        );
    }
}
