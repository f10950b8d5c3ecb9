//! Ending runs nobody executes any more: at shutdown past the grace period, and when a
//! run cannot be resumed. The run ends `failed` with code `interrupted`, keeping every turn
//! its log shows finished.

use futures::StreamExt;

use super::record::{Record, finished_turns, record_of};
use crate::live;
use crate::state::AppState;
use crate::store::{Finish, Run, RunKind, StoreError, now_ms};
use crossfire_engine::event::Event;
use crossfire_engine::transcript::{
    ErrorCode, ErrorInfo, PerspectiveRecord, Status, Transcript, Turn,
};

/// Marks the runs this instance holds that are still unfinished past the shutdown grace
/// period as failed with reason `interrupted`, and ends their event logs.
pub async fn interrupt_unfinished(state: &AppState) -> Result<usize, StoreError> {
    let runs = state.store.unfinished_runs_of(&state.instance).await?;
    let count = runs.len();
    // Many at a time: their events then share commits, and a shutdown with thousands of
    // runs in flight does not wait for each in turn.
    let interrupted: Vec<Result<(), StoreError>> = futures::stream::iter(runs)
        .map(|run| {
            let state = state.clone();
            async move { interrupt(&state, &run).await }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    interrupted.into_iter().collect::<Result<(), _>>()?;
    Ok(count)
}

async fn interrupt(state: &AppState, run: &Run) -> Result<(), StoreError> {
    interrupt_for(state, run, "the service stopped before this finished").await
}

/// Ends a run nobody executes any more as `interrupted`, saying `why`.
pub(crate) async fn interrupt_for(
    state: &AppState,
    run: &Run,
    why: &str,
) -> Result<(), StoreError> {
    let reason = ErrorInfo {
        code: ErrorCode::Interrupted,
        message: why.into(),
    };
    // A run still executing here adds nothing more, and what it queued is stored first.
    let last = state.hub.seal(&run.id);
    // Its transcript keeps every turn its stream showed finished.
    let logged = match state.hub.events_of(&run.id) {
        Some(events) => events,
        None => state.store.events_after(&run.id, 0).await?,
    };
    let events = [
        Event::Error {
            code: reason.code,
            message: reason.message.clone(),
        },
        Event::Done {
            status: Status::Failed,
        },
    ];
    let finish = Finish {
        status: Status::Failed,
        result: interrupted_result(run, &reason, &finished_turns(&logged)),
        error: Some(reason),
        at: now_ms(),
    };
    live::end_log(&state.store, &run.id, last, &events, finish).await
}

/// A run's stored result, marked failed for `reason`. A result that cannot be read is kept
/// as it is: the row's status and error say what happened.
fn interrupted_result(run: &Run, reason: &ErrorInfo, turns: &[(u8, Turn)]) -> String {
    fn failed<R: Record>(run: &Run, reason: &ErrorInfo, turns: &[(u8, Turn)]) -> Option<String> {
        let mut record: R = record_of(run).ok()?;
        record.keep_turns(turns);
        let failed = Run {
            status: Status::Failed,
            error: Some(reason.clone()),
            ..run.clone()
        };
        record.set_state(&failed);
        serde_json::to_string(&record).ok()
    }
    let rewritten = match run.kind {
        RunKind::Debate => failed::<Transcript>(run, reason, turns),
        RunKind::Perspective => failed::<PerspectiveRecord>(run, reason, turns),
    };
    rewritten.unwrap_or_else(|| run.result.clone())
}
