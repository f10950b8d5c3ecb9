//! Runs that outlive the process executing them. Each instance claims the runs it executes
//! and renews its claims while it lives. After a crash, the instance restarted in its place
//! takes its runs over at once, and any instance takes over a run whose claim has lapsed: a
//! debate or perspective resumes, keeping the turns its log shows finished; a run that cannot
//! resume (an editor's trial, or a persona or story that changed) ends as `interrupted`.

use std::time::Duration;

use super::interrupt::interrupt_for;
use super::launch::{run_sink, start};
use super::record::{finished_turns, record_of};
use super::spec::RunSpec;
use crate::library::LiveSet;
use crate::live::{CRASH_GAP, Owner};
use crate::state::AppState;
use crate::store::{Dialect, Run, RunKind, StoreError, StoredEvent, now_ms};
use crossfire_engine::event::{Event, Speaker};
use crossfire_engine::persona::Persona;
use crossfire_engine::transcript::{PersonaRef, PerspectiveRecord, Transcript};

/// The reason a resumed turn's `turn_restart` gives.
const RESTARTED: &str = "the service restarted";

/// What a take-over did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TakenOver {
    pub resumed: usize,
    pub interrupted: usize,
}

/// Takes over the unfinished runs nobody holds: at start-up also those a previous process
/// of this instance's name held (on SQLite, every unfinished run: one instance serves a
/// SQLite file). Each is resumed, or ended as interrupted.
pub async fn take_over(state: &AppState, at_start: bool) -> Result<TakenOver, StoreError> {
    let lapsed_before = match (at_start, state.store.dialect()) {
        (true, Dialect::Sqlite) => i64::MAX,
        _ => now_ms(),
    };
    let runs = state
        .store
        .claim_abandoned(state.claim(), lapsed_before, at_start)
        .await?;
    let mut taken = TakenOver::default();
    for run in runs {
        let set = state.set();
        match spec_for(&set, &run) {
            Ok(spec) => {
                let log = state.store.events_after(&run.id, 0).await?;
                resume(state, &run, log, spec, set.engine.clone()).await?;
                taken.resumed += 1;
            }
            Err(why) => {
                tracing::warn!(run = run.id, "cannot resume: {why}");
                interrupt_for(state, &run, &format!("the service stopped, and {why}")).await?;
                taken.interrupted += 1;
            }
        }
    }
    if taken.resumed + taken.interrupted > 0 {
        tracing::warn!(
            resumed = taken.resumed,
            interrupted = taken.interrupted,
            "took over runs left unfinished by a stopped instance"
        );
        state
            .metrics
            .runs_taken_over(taken.resumed, taken.interrupted);
    }
    Ok(taken)
}

/// Renews this instance's claims, and takes over lapsed runs, a few times per lease, for as
/// long as the service lives.
pub async fn keep_claims(state: AppState) {
    let every = state.config.run_lease / 3;
    let mut ticks = tokio::time::interval(every.max(Duration::from_millis(100)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        if let Err(e) = state.store.renew_claims(state.claim()).await {
            tracing::error!("cannot renew this instance's claims on its runs: {e}");
            continue;
        }
        if let Err(e) = take_over(&state, false).await {
            tracing::error!("cannot take over lapsed runs: {e}");
        }
    }
}

/// What `run` executes when resumed with the live `set`, or why it cannot be resumed.
fn spec_for(set: &LiveSet, run: &Run) -> Result<RunSpec, String> {
    if run.trial {
        return Err("an editor's trial run is not resumed".into());
    }
    let unreadable = |_| "its stored record cannot be read".to_string();
    match run.kind {
        RunKind::Debate => {
            let transcript: Transcript = record_of(run).map_err(unreadable)?;
            let found = (|| {
                let story = set.catalog.story(&transcript.story).ok()?.clone();
                let a = same_persona(set, &transcript.personas.a)?;
                let b = same_persona(set, &transcript.personas.b)?;
                Some((story, a, b))
            })();
            let (story, a, b) = found.ok_or("its story or a persona has changed")?;
            Ok(RunSpec::Debate {
                story,
                a,
                b,
                motion: transcript.motion,
            })
        }
        RunKind::Perspective => {
            let record: PerspectiveRecord = record_of(run).map_err(unreadable)?;
            let found = (|| {
                let story = set.catalog.story(&record.story).ok()?.clone();
                Some((story, same_persona(set, &record.persona)?))
            })();
            let (story, persona) = found.ok_or("its story or persona has changed")?;
            Ok(RunSpec::Perspective { story, persona })
        }
    }
}

/// Resumes `run` here as `spec` on `engine`, keeping the turns its stored `log` shows
/// finished; the log continues past a gap.
async fn resume(
    state: &AppState,
    run: &Run,
    log: Vec<StoredEvent>,
    spec: RunSpec,
    engine: std::sync::Arc<crossfire_engine::debate::Engine>,
) -> Result<(), StoreError> {
    let restarted = unfinished_turns(&log);
    let finished = finished_turns(&log);
    // New events go on past a gap: a client may have heard numbers the log never got.
    let last = state.store.last_seq(&run.id).await? + CRASH_GAP;
    let owner = Owner {
        user_id: run.user_id,
        kind: run.kind,
    };
    let live = state.hub.open_after(&run.id, owner, log, last);
    // A turn the log shows started is started over, as a retry would: its clients drop
    // the text they have of it.
    let sink = run_sink(state, &live, &run.id).mapped(move |event| match event {
        Event::TurnStart { round, speaker, .. } if restarted.contains(&(round, speaker)) => {
            Event::TurnRestart {
                round,
                speaker,
                reason: RESTARTED.into(),
            }
        }
        event => event,
    });
    start(state, run, live, sink, spec, engine, finished);
    Ok(())
}

/// The persona a run was started with, if the catalog still has that version of it.
fn same_persona(set: &LiveSet, wanted: &PersonaRef) -> Option<Persona> {
    let persona = set.catalog.persona(&wanted.id).ok()?;
    (persona.version == wanted.version).then(|| persona.clone())
}

/// The turns a log shows started and not finished.
fn unfinished_turns(log: &[StoredEvent]) -> Vec<(u8, Speaker)> {
    let mut started = Vec::new();
    let mut ended = Vec::new();
    for event in log.iter().filter_map(StoredEvent::event) {
        match event {
            Event::TurnStart { round, speaker, .. } => started.push((round, speaker)),
            Event::TurnEnd { round, speaker, .. } => ended.push((round, speaker)),
            _ => {}
        }
    }
    started.retain(|turn| !ended.contains(turn));
    started
}
