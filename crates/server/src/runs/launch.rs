//! Launching a run: stored first (charging today's quota), opened in the hub so followers
//! find it at once, then executed in its own task, which goes on whatever its clients do.

use std::sync::Arc;

use serde::Serialize;

use super::record::Outcome;
use super::spec::RunSpec;
use crate::error::ApiError;
use crate::limits::{seconds_to_next_day, today};
use crate::live::{LiveRun, Owner};
use crate::state::AppState;
use crate::store::{Finish, Quota, Run, RunKind, StoreError, now_ms};
use crossfire_engine::debate::Engine;
use crossfire_engine::event::EventSink;
use crossfire_engine::transcript::Status;

/// A run accepted: it runs in the background; follow `events`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Accepted {
    pub id: String,
    pub status: Status,
    /// The event stream's path.
    pub events: String,
    /// Perspectives only: `false` (a cached one is answered whole, with `cached: true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cached: Option<bool>,
}

/// A new run: what it executes, on which engine, for whom.
pub struct Launch {
    pub spec: RunSpec,
    /// The engine of the live set the request was checked against.
    pub engine: Arc<Engine>,
    pub user_id: i64,
    /// The perspective cache's key.
    pub cache_key: Option<String>,
    /// An editor's trial, kept out of readers' lists and the cache.
    pub trial: bool,
    /// The daily quota it counts against, if any.
    pub per_day: Option<u32>,
}

/// Stores a new run (charging today's quota), then executes it in its own task.
pub async fn launch(state: &AppState, launch: Launch) -> Result<Accepted, ApiError> {
    let Launch {
        spec,
        engine,
        user_id,
        cache_key,
        trial,
        per_day,
    } = launch;
    let kind = spec.kind();
    let id = crossfire_engine::transcript::new_id();
    // The stored result starts as the queued record: what GET shows while it runs.
    let run = Run {
        trial,
        ..Run::queued(&id, kind, user_id, cache_key, spec.queued(&engine, &id)?)
    };
    create_run(state, &run, per_day).await?;
    let owner = Owner { user_id, kind };
    // Open before the client hears of the run, so a follower arriving at once finds it.
    let live = state.hub.open(&run.id, owner);
    let sink = run_sink(state, &live, &run.id);
    start(state, &run, live, sink, spec, engine, Vec::new());
    Ok(Accepted {
        events: kind.events_path(&id),
        id,
        status: Status::Queued,
        cached: None,
    })
}

/// Where a run's events go — its live run — and where what screening withheld from readers
/// is kept: the store, for editors, never the run's log.
pub(crate) fn run_sink(state: &AppState, live: &Arc<LiveRun>, run_id: &str) -> EventSink {
    let store = state.store.clone();
    let id = run_id.to_string();
    live.sink().with_quarantine(move |item| {
        // The category and the rule, never the text.
        tracing::info!(run = %id, category = %item.category, rule = %item.rule, refused = item.refused, "model output withheld");
        let (store, id) = (store.clone(), id.clone());
        tokio::spawn(async move {
            if let Err(e) = store.withhold(&id, &item).await {
                tracing::error!(run = %id, "cannot keep withheld output for editors: {e}");
            }
        });
    })
}

/// Stores a new run claimed by this instance, charging today's quota (if it has one) —
/// unless today's token budget is spent.
async fn create_run(state: &AppState, run: &Run, per_day: Option<u32>) -> Result<(), ApiError> {
    state.budget.check(&state.store, &state.metrics).await?;
    let day = today();
    match state
        .store
        .create_run(
            run,
            per_day.map(|limit| Quota { day: &day, limit }),
            state.claim(),
        )
        .await
    {
        Err(StoreError::QuotaExceeded { limit }) => Err(ApiError::TooMany {
            message: format!(
                "the daily limit of {limit} {}s is reached",
                run.kind.as_str()
            ),
            retry_after: seconds_to_next_day(),
        }),
        other => Ok(other?),
    }
}

/// Executes a stored run opened in the hub as `live` in its own task: `spec` on `engine`,
/// keeping the turns a resumed run already `finished`, reporting to `sink`.
pub(crate) fn start(
    state: &AppState,
    run: &Run,
    live: Arc<LiveRun>,
    sink: EventSink,
    spec: RunSpec,
    engine: Arc<Engine>,
    finished: Vec<(u8, crossfire_engine::transcript::Turn)>,
) {
    let task_state = state.clone();
    let (id, kind) = (run.id.clone(), run.kind);
    state.spawn_run(async move {
        let work = spec.run(&engine, id.clone(), &finished, &sink);
        execute(&task_state, kind, &id, live, work).await;
    });
}

/// Waits for a run's engine work, then stores its result.
async fn execute(
    state: &AppState,
    kind: RunKind,
    id: &str,
    live: Arc<LiveRun>,
    work: impl Future<Output = Outcome>,
) {
    // The run shows as running once its first event is stored.
    let finish = match work.await {
        Ok((status, error, result)) => {
            state.metrics.run_finished(kind.as_str(), status.as_str());
            Some(Finish {
                status,
                result,
                error,
                at: now_ms(),
            })
        }
        Err(e) => {
            tracing::error!(run = id, "cannot serialize the result: {e}");
            None
        }
    };
    live.finish(&state.hub, finish).await;
}
