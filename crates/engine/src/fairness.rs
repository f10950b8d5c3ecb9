//! Fairness figures over real debates' verdicts: does the judge agree with itself when the
//! sides swap places, does it favour the side it reads first, or side A, or some persona?

use std::collections::BTreeMap;

use serde::Serialize;

use crate::transcript::{Speaker, Transcript, Verdict, Winner};

/// The figures over a set of judged debates. Rates are shares from 0 to 1, `None` when
/// nothing counts towards them yet.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Fairness {
    /// Debates with a verdict.
    pub debates: usize,
    /// Of those, the share whose two passes (sides in swapped order) named the same winner.
    pub swap_agreement: Option<f64>,
    /// Of the passes that named a winner, the share won by the side the judge read first.
    pub first_position_wins: Option<f64>,
    /// Of the verdicts, the share won by side A (ties count as not A).
    pub side_a_wins: Option<f64>,
    /// Each persona's record, by id.
    pub personas: Vec<PersonaRecord>,
}

/// A persona's record in judged debates.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PersonaRecord {
    pub id: String,
    pub debates: usize,
    pub wins: usize,
    pub win_rate: f64,
}

/// Counts, over verdicts, how often the two passes agreed and how often the side read first
/// won a pass.
#[derive(Debug, Clone, Copy, Default)]
pub struct PassTally {
    agreed: usize,
    paired: usize,
    first_won: usize,
    decided: usize,
}

impl PassTally {
    pub fn add(&mut self, verdict: &Verdict) {
        if let [one, two] = verdict.passes.as_slice() {
            self.paired += 1;
            self.agreed += usize::from(one.winner == two.winner);
        }
        for pass in &verdict.passes {
            let winner = match pass.winner {
                Winner::A => Speaker::A,
                Winner::B => Speaker::B,
                Winner::Tie => continue,
            };
            self.decided += 1;
            self.first_won += usize::from(pass.order[0] == winner);
        }
    }

    /// Of the verdicts with two passes, the share whose passes named the same winner.
    pub fn swap_agreement(&self) -> Option<f64> {
        share(self.agreed, self.paired)
    }

    /// Of the passes that named a winner, the share won by the side read first.
    pub fn first_position_wins(&self) -> Option<f64> {
        share(self.first_won, self.decided)
    }
}

fn share(part: usize, whole: usize) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

impl Fairness {
    /// The figures over these transcripts (those without a verdict are left out).
    pub fn of<'a>(transcripts: impl IntoIterator<Item = &'a Transcript>) -> Fairness {
        let mut debates = 0;
        let mut passes = PassTally::default();
        let mut a_won = 0;
        let mut records: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for t in transcripts {
            let Some(verdict) = &t.verdict else { continue };
            debates += 1;
            passes.add(verdict);
            a_won += usize::from(verdict.winner == Winner::A);
            for (side, winner) in [(&t.personas.a, Winner::A), (&t.personas.b, Winner::B)] {
                let record = records.entry(side.id.clone()).or_default();
                record.0 += 1;
                record.1 += usize::from(verdict.winner == winner);
            }
        }
        Fairness {
            debates,
            swap_agreement: passes.swap_agreement(),
            first_position_wins: passes.first_position_wins(),
            side_a_wins: share(a_won, debates),
            personas: records
                .into_iter()
                .map(|(id, (debates, wins))| PersonaRecord {
                    id,
                    debates,
                    wins,
                    win_rate: wins as f64 / debates as f64,
                })
                .collect(),
        }
    }
}
