//! A run's stored record — a debate's transcript or a perspective — read back with what its
//! row knows best, and rebuilt from its event log when the run ended without finishing.

use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::store::{Run, StoredEvent};
use crossfire_engine::transcript::{
    ErrorInfo, PerspectiveRecord, Round, RoundKind, Status, Transcript, Turn,
};

/// What a run's work returns: its status, error and result JSON.
pub type Outcome = serde_json::Result<(Status, Option<ErrorInfo>, String)>;

/// The outcome of a run whose engine work ended with `record`.
pub fn outcome(record: &impl Record) -> Outcome {
    let (status, error) = record.state();
    serde_json::to_string(record).map(|json| (status, error, json))
}

pub(crate) fn to_json(record: &impl serde::Serialize) -> Result<String, ApiError> {
    serde_json::to_string(record).map_err(|e| ApiError::Internal(format!("cannot encode: {e}")))
}

/// A run's stored record: a debate's transcript or a perspective.
pub trait Record: DeserializeOwned + serde::Serialize {
    /// Sets what the run's row knows best: its id, status and error (which change when a run
    /// is interrupted).
    fn set_state(&mut self, run: &Run);

    /// The record's status and error, for its row.
    fn state(&self) -> (Status, Option<ErrorInfo>);

    /// Takes the turns an interrupted run's log shows finished (by round).
    fn keep_turns(&mut self, turns: &[(u8, Turn)]);
}

/// The turns a run's log shows finished, with their rounds, as their `turn_end` told them.
pub fn finished_turns(events: &[StoredEvent]) -> Vec<(u8, Turn)> {
    events
        .iter()
        .filter_map(|e| e.event()?.finished_turn())
        .collect()
}

/// What a run's row knows best, set on its record's own fields.
fn set_row_state(run: &Run, id: &mut String, status: &mut Status, error: &mut Option<ErrorInfo>) {
    *id = run.id.clone();
    *status = run.status;
    if run.error.is_some() {
        *error = run.error.clone();
    }
}

impl Record for Transcript {
    fn set_state(&mut self, run: &Run) {
        set_row_state(run, &mut self.id, &mut self.status, &mut self.error);
    }

    fn state(&self) -> (Status, Option<ErrorInfo>) {
        (self.status, self.error.clone())
    }

    fn keep_turns(&mut self, turns: &[(u8, Turn)]) {
        for (number, kind) in [(1, RoundKind::Opening), (2, RoundKind::Rebuttal)] {
            let of_round: Vec<Turn> = turns
                .iter()
                .filter(|(round, _)| *round == number)
                .map(|(_, turn)| turn.clone())
                .collect();
            if !of_round.is_empty() && !self.rounds.iter().any(|r| r.round == number) {
                self.rounds.push(Round {
                    round: number,
                    kind,
                    turns: of_round,
                });
            }
        }
    }
}

impl Record for PerspectiveRecord {
    fn set_state(&mut self, run: &Run) {
        set_row_state(run, &mut self.id, &mut self.status, &mut self.error);
    }

    fn state(&self) -> (Status, Option<ErrorInfo>) {
        (self.status, self.error.clone())
    }

    fn keep_turns(&mut self, turns: &[(u8, Turn)]) {
        if let Some((_, turn)) = turns.first()
            && self.text.is_empty()
        {
            self.text = turn.text.clone();
            self.unsupported = turn.unsupported.clone();
            self.tokens = turn.tokens;
        }
    }
}

/// The stored record of a run, as it stands.
pub fn record_of<R: Record>(run: &Run) -> Result<R, ApiError> {
    let mut record: R = serde_json::from_str(&run.result)
        .map_err(|e| ApiError::Internal(format!("run {}: unreadable result: {e}", run.id)))?;
    record.set_state(run);
    Ok(record)
}
