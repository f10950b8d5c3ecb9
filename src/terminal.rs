//! Rendering a debate's events in a terminal. Turns that run concurrently are shown one
//! after the other: the turn in focus streams live, the others are held until their turn.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};

use tokio::sync::mpsc::UnboundedReceiver;

use crossfire_engine::claims::QuoteSource;
use crossfire_engine::event::{Event, Speaker};
use crossfire_engine::persona::{LIVING_NOTICE, Persona, PersonaKind};
use crossfire_engine::transcript::{CriteriaReasons, ScoreMethod, Transcript, Winner};

#[derive(Default)]
struct Held {
    started: bool,
    ended: bool,
    text: String,
    end_note: String,
}

struct Printer {
    order: Vec<(u8, Speaker)>,
    focus: usize,
    held: HashMap<(u8, Speaker), Held>,
    names: HashMap<Speaker, String>,
    bold: bool,
}

impl Printer {
    fn new(order: Vec<(u8, Speaker)>, names: HashMap<Speaker, String>) -> Printer {
        Printer {
            order,
            focus: 0,
            held: HashMap::new(),
            names,
            bold: std::io::stdout().is_terminal(),
        }
    }

    fn header(&self, round: u8, speaker: Speaker) -> String {
        let name = self.names.get(&speaker).map_or("?", String::as_str);
        let title = match (speaker, round) {
            (Speaker::Solo, _) => format!("{name}'s perspective"),
            (_, 1) => format!(
                "Round 1 · Opening · {name} ({})",
                speaker.as_str().to_uppercase()
            ),
            (_, _) => format!(
                "Round 2 · Rebuttal · {name} ({})",
                speaker.as_str().to_uppercase()
            ),
        };
        if self.bold {
            format!("\n\x1b[1m━━ {title} ━━\x1b[0m\n")
        } else {
            format!("\n━━ {title} ━━\n")
        }
    }

    fn in_focus(&self, key: (u8, Speaker)) -> bool {
        self.order.get(self.focus) == Some(&key)
    }

    fn handle(&mut self, event: Event, out: &mut impl Write) -> std::io::Result<()> {
        match event {
            Event::TurnStart { round, speaker, .. } => {
                self.held.entry((round, speaker)).or_default().started = true;
                if self.in_focus((round, speaker)) {
                    write!(out, "{}", self.header(round, speaker))?;
                }
            }
            Event::Token {
                round,
                speaker,
                text,
            } => {
                if self.in_focus((round, speaker)) {
                    write!(out, "{text}")?;
                } else {
                    self.held
                        .entry((round, speaker))
                        .or_default()
                        .text
                        .push_str(&text);
                }
            }
            Event::TurnRestart {
                round,
                speaker,
                reason,
            } => {
                if self.in_focus((round, speaker)) {
                    write!(
                        out,
                        "\n[the model failed ({reason}); this turn starts again]"
                    )?;
                    write!(out, "{}", self.header(round, speaker))?;
                } else {
                    self.held.entry((round, speaker)).or_default().text.clear();
                }
            }
            Event::TurnEnd {
                round,
                speaker,
                unsupported,
                quotes,
                truncated,
                ..
            } => {
                let mut note = String::new();
                for quote in quotes
                    .iter()
                    .filter(|q| q.source == QuoteSource::Documented)
                {
                    let reference = quote.reference.as_deref().unwrap_or("a signature phrase");
                    note += &format!("  ✓ quoting \"{}\" ({reference})\n", quote.text);
                }
                if truncated {
                    note.push_str("  (the speech reached its length limit: it ends at its last full sentence)\n");
                }
                if !unsupported.is_empty() {
                    note += &format!("  ⚠ not in the story: {}\n", unsupported.join(", "));
                }
                let held = self.held.entry((round, speaker)).or_default();
                held.ended = true;
                held.end_note = note;
                if self.in_focus((round, speaker)) {
                    self.advance(out)?;
                }
            }
            Event::Error { message, .. } => writeln!(out, "\n[error: {message}]")?,
            Event::Verdict(_) | Event::Done { .. } => {}
        }
        out.flush()
    }

    /// Closes the turn in focus and moves on, flushing what later turns already said.
    fn advance(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        while let Some(&key) = self.order.get(self.focus) {
            let held = self.held.remove(&key).unwrap_or_default();
            write!(out, "{}\n{}", held.text, held.end_note)?;
            self.focus += 1;
            let Some(&next) = self.order.get(self.focus) else {
                break;
            };
            let (started, ended) = self
                .held
                .get(&next)
                .map_or((false, false), |h| (h.started, h.ended));
            if !started {
                break;
            }
            write!(out, "{}", self.header(next.0, next.1))?;
            if !ended {
                let text = self
                    .held
                    .get_mut(&next)
                    .map(|h| std::mem::take(&mut h.text));
                write!(out, "{}", text.unwrap_or_default())?;
                break;
            }
        }
        Ok(())
    }
}

/// Prints a debate's events as they come.
pub async fn render_debate(
    mut events: UnboundedReceiver<Event>,
    personas: [Persona; 2],
    motion: String,
) {
    let names = HashMap::from([
        (Speaker::A, personas[0].name.clone()),
        (Speaker::B, personas[1].name.clone()),
    ]);
    let order = vec![
        (1, Speaker::A),
        (1, Speaker::B),
        (2, Speaker::A),
        (2, Speaker::B),
    ];
    let mut printer = Printer::new(order, names);
    let mut out = std::io::stdout();
    let _ = writeln!(out, "Motion: {motion}");
    for p in personas.iter().filter(|p| p.kind == PersonaKind::Living) {
        let _ = writeln!(out, "Note: {} is {LIVING_NOTICE}.", p.name);
    }
    while let Some(event) = events.recv().await {
        if printer.handle(event, &mut out).is_err() {
            return; // stdout closed (e.g. piped into `head`): nothing more to show
        }
    }
}

/// Prints a perspective's events as they come.
pub async fn render_perspective(mut events: UnboundedReceiver<Event>, persona: Persona) {
    let names = HashMap::from([(Speaker::Solo, persona.name.clone())]);
    let mut printer = Printer::new(vec![(1, Speaker::Solo)], names);
    let mut out = std::io::stdout();
    if persona.kind == PersonaKind::Living {
        let _ = writeln!(out, "Note: {} is {LIVING_NOTICE}.", persona.name);
    }
    while let Some(event) = events.recv().await {
        if printer.handle(event, &mut out).is_err() {
            return;
        }
    }
}

/// Prints the verdict table and the debate's cost.
pub fn print_summary(transcript: &Transcript) {
    let Some(verdict) = &transcript.verdict else {
        return;
    };
    let names = [&transcript.personas.a.name, &transcript.personas.b.name];
    let headline = match verdict.winner {
        Winner::A => format!("{} (A) wins", names[0]),
        Winner::B => format!("{} (B) wins", names[1]),
        Winner::Tie if verdict.contested => {
            "a tie: the judge's two passes (sides in swapped order) disagreed".to_string()
        }
        Winner::Tie => "a tie".to_string(),
    };
    let width = names
        .iter()
        .map(|n| n.chars().count())
        .max()
        .unwrap_or(0)
        .max(8);
    let mut table = format!("\n━━ Verdict: {headline} ━━\n{:<10}", "");
    for name in names {
        table.push_str(&format!("  {name:>width$}"));
    }
    table.push('\n');
    let a = &verdict.scores.a;
    let b = &verdict.scores.b;
    let (ca, cb) = (&a.criteria, &b.criteria);
    for ((label, x), (_, y)) in ca.named().into_iter().zip(cb.named()) {
        table.push_str(&format!("{label:<10}  {x:>width$.1}  {y:>width$.1}\n"));
    }
    table.push_str(&format!(
        "{:<10}  {:>width$.1}  {:>width$.1}\n",
        "total", a.total, b.total
    ));
    let method = verdict.method.describe();
    let agreement = if verdict.single_pass {
        "one pass only: the other could not be read"
    } else if !verdict.contested {
        "both passes named the same winner"
    } else {
        "the passes disagreed"
    };
    table.push_str(&format!(
        "margin {:.1} of 40 · {agreement} · {method}\n\
         The speeches and this verdict are simulated by a language model.\n",
        verdict.margin
    ));
    if let Some(notice) = verdict.low_confidence_notice() {
        table.push_str(&format!("{notice}.\n"));
    }
    println!("{table}");
    // A likelihood judge reads each side alone: its passes are the same, shown once.
    let by_likelihood = verdict.method == ScoreMethod::Likelihood;
    let shown = if by_likelihood {
        1
    } else {
        verdict.passes.len()
    };
    for (i, pass) in verdict.passes.iter().take(shown).enumerate() {
        let first = pass.order[0].as_str().to_uppercase();
        match by_likelihood {
            true => println!("How it was scored: {}", pass.rationale),
            false => println!("Pass {} ({first} shown first): {}", i + 1, pass.rationale),
        }
        for (side, reasons) in [("A", &pass.reasons.a), ("B", &pass.reasons.b)] {
            // Brief judging (small models) gives bare scores.
            if *reasons == CriteriaReasons::default() {
                continue;
            }
            println!(
                "  {side}: argument: {}; evidence: {}; rebuttal: {}; fidelity: {}",
                reasons.argument, reasons.evidence, reasons.rebuttal, reasons.fidelity
            );
        }
    }
    println!(
        "\nTokens: {} prompt + {} completion · model {} · judge {}",
        transcript.usage.prompt_tokens,
        transcript.usage.completion_tokens,
        transcript.provenance.model,
        transcript.provenance.judge_model
    );
}
