//! A run's events as Server-Sent Events: live from the hub while it runs here, from the
//! stored log otherwise, resumed after `Last-Event-ID`.

use std::convert::Infallible;
use std::sync::Arc;

use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};

use super::access::{may_read, not_found, readable};
use crate::error::ApiError;
use crate::live::Follower;
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::store::{RunKind, User};

/// Where a stream starts: after `Last-Event-ID` when the client sends one (a reconnection),
/// else after `?after=` (a debate judged again is followed from where its log ended).
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
pub struct EventsQuery {
    /// Start after this event.
    after: Option<i64>,
}

/// The events of a run this user may read, as SSE.
pub async fn events(
    state: &AppState,
    user: &User,
    id: &str,
    kind: RunKind,
    headers: &HeaderMap,
    query: &EventsQuery,
) -> Result<Response, ApiError> {
    // A run executing here needs no trip to the database to be followed.
    let unfinished = match state.hub.owner(id) {
        Some(owner) if may_read(user, kind, owner.kind, owner.user_id) => true,
        Some(_) => return Err(not_found(kind, id)),
        None => readable(state, user, id, kind)
            .await?
            .status
            .is_unfinished(),
    };
    stream(state, id, unfinished, headers, query.after).await
}

/// The run's events as SSE, after `Last-Event-ID` if given.
async fn stream(
    state: &AppState,
    run_id: &str,
    unfinished: bool,
    headers: &HeaderMap,
    query_after: Option<i64>,
) -> Result<Response, ApiError> {
    let mut after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .or(query_after)
        .unwrap_or(0)
        .max(0);
    // Followers here hear events before they are stored. After a crash, a client may have
    // heard events the log never got (it goes on past a gap): it starts again from the first
    // event, told to drop what it has.
    let reset = after > 0
        && match state.hub.lost(run_id, after) {
            Some(lost) => lost,
            None => !state.store.has_event(run_id, after).await?,
        };
    if reset {
        after = 0;
    }
    let follower = Follower::start(&state.hub, run_id, after, unfinished).await?;
    let sse = Sse::new(sse_stream(follower, reset, state.metrics.clone()))
        .keep_alive(KeepAlive::default());
    // Proxies must not buffer a live stream.
    Ok((
        [("x-accel-buffering", "no"), ("cache-control", "no-cache")],
        sse,
    )
        .into_response())
}

/// The follower's events as SSE, after a `reset` (no id) when the client must start over.
fn sse_stream(
    follower: Follower,
    reset: bool,
    metrics: Arc<Metrics>,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    let open = StreamOpen::new(metrics);
    let reset = reset.then(|| Ok(SseEvent::default().event("reset").data("{}")));
    let events = futures::stream::unfold((follower, open), |(mut follower, open)| async move {
        let event = follower.next().await?;
        let sse = SseEvent::default()
            .id(event.seq.to_string())
            .event(event.name)
            .data(event.data);
        Some((Ok(sse), (follower, open)))
    });
    futures::stream::iter(reset).chain(events)
}

/// Counts a stream as open for as long as it lives (a client that goes away drops it).
struct StreamOpen(Arc<Metrics>);

impl StreamOpen {
    fn new(metrics: Arc<Metrics>) -> StreamOpen {
        metrics.stream_gauge(1);
        StreamOpen(metrics)
    }
}

impl Drop for StreamOpen {
    fn drop(&mut self) {
        self.0.stream_gauge(-1);
    }
}
