//! Judging a finished debate again: only the judging, on its four stored speeches, when its
//! verdict is missing (the judge could not be read) or the judge has changed since. The
//! run is started again in place: its event log goes on with `verdict` (or `error`) and a
//! second `done`, and its stored transcript gets the new verdict.

use std::sync::Arc;

use super::launch::{Accepted, run_sink, start};
use super::record::record_of;
use super::spec::RunSpec;
use crate::error::ApiError;
use crate::live::Owner;
use crate::state::AppState;
use crate::store::Run;
use crossfire_engine::debate::can_judge_again;
use crossfire_engine::transcript::{Status, Transcript};

/// Starts judging `run` (a finished debate) again; its followers read on after the log's
/// current end.
pub async fn judge_again(state: &AppState, run: &Run) -> Result<Accepted, ApiError> {
    let transcript: Transcript = record_of(run)?;
    can_judge_again(&transcript).map_err(|e| ApiError::Conflict(e.to_string()))?;
    let set = state.set();
    let engine = set.engine.clone();
    if transcript.verdict.is_some() && transcript.provenance.judge_model == engine.judge.name() {
        return Err(ApiError::Conflict(format!(
            "this debate has a verdict from the judge configured now ({}): it is judged again \
             once its verdict is missing or the judge has changed",
            engine.judge.name()
        )));
    }
    let gone = |what: &str| {
        ApiError::Conflict(format!(
            "its {what} is no longer in the library: it cannot be judged again"
        ))
    };
    let story = set
        .catalog
        .story(&transcript.story)
        .map_err(|_| gone("story"))?;
    let a = set
        .catalog
        .persona(&transcript.personas.a.id)
        .map_err(|_| gone("first persona"))?;
    let b = set
        .catalog
        .persona(&transcript.personas.b.id)
        .map_err(|_| gone("second persona"))?;
    let spec = RunSpec::Verdict {
        transcript: Box::new(transcript),
        story: story.clone(),
        a: a.clone(),
        b: b.clone(),
    };
    state.budget.check(&state.store, &state.metrics).await?;
    if !state.store.restart_finished(&run.id, state.claim()).await? {
        return Err(ApiError::Conflict(
            "the debate is running already".to_string(),
        ));
    }
    let log = state.store.events_after(&run.id, 0).await?;
    let last = state.store.last_seq(&run.id).await?;
    let owner = Owner {
        user_id: run.user_id,
        kind: run.kind,
    };
    let live = state.hub.open_after(&run.id, owner, log, last);
    let sink = run_sink(state, &live, &run.id);
    start(
        state,
        run,
        live,
        sink,
        spec,
        Arc::clone(&engine),
        Vec::new(),
    );
    tracing::info!(run = %run.id, "judging again");
    Ok(Accepted {
        id: run.id.clone(),
        status: Status::Running,
        events: format!("{}?after={last}", run.kind.events_path(&run.id)),
        cached: None,
    })
}
