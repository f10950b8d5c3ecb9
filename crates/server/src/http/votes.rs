//! Readers' votes on a debate's motion, Oxford style: one before the verdict and one after,
//! each changeable while its phase is open; the room's split and swing beside the verdict.

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::CurrentUser;
use crate::error::{ApiError, ApiJson, ErrorBody};
use crate::runs::{not_found, record_of};
use crate::state::AppState;
use crate::store::{Run, RunKind, Vote, VoteChoice, VotePhase};
use crossfire_engine::transcript::{Sides, Status, Transcript};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(cast))
}

/// How many readers chose each side in one phase.
#[derive(Serialize, ToSchema, Default, Clone, Copy, PartialEq, Debug)]
pub struct VoteCounts {
    pub a: u32,
    pub b: u32,
    pub undecided: u32,
}

/// The room's votes on the motion, before and after the verdict.
#[derive(Serialize, ToSchema)]
pub struct VoteTally {
    pub before: VoteCounts,
    pub after: VoteCounts,
    /// The phase readers may vote in now, if any: `before` until the verdict, then `after`.
    pub open: Option<VotePhase>,
    /// The signed-in reader's own votes.
    pub mine: MyVotes,
    /// Each side's share of the room after, less its share before, in percentage points
    /// (when both phases have votes).
    pub swing: Option<Sides<f64>>,
}

/// One reader's votes.
#[derive(Serialize, ToSchema, Default)]
pub struct MyVotes {
    pub before: Option<VoteChoice>,
    pub after: Option<VoteChoice>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewVote {
    phase: VotePhase,
    choice: VoteChoice,
}

/// `POST /api/debates/{id}/votes`: the owner's vote, or any signed-in reader's on a shared
/// debate.
#[utoipa::path(post, path = "/api/debates/{id}/votes", tag = "debates", params(("id" = String, Path)), request_body = NewVote, security(("bearer" = [])),
    responses((status = 200, description = "Counted: the room's votes now", body = VoteTally), (status = 404, description = "Not found, or not mine and not shared", body = ErrorBody), (status = 409, description = "That phase is not open", body = ErrorBody), (status = 422, description = "Unknown phase or choice", body = ErrorBody), (status = 410, description = "The editors removed it (code `removed`)", body = ErrorBody)))]
pub async fn cast(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NewVote>,
) -> Result<Json<VoteTally>, ApiError> {
    let run = match state.store.run(&id).await? {
        Some(run)
            if run.kind == RunKind::Debate
                && (run.user_id == user.id || run.share_token.is_some()) =>
        {
            run
        }
        _ => return Err(not_found(RunKind::Debate, &id)),
    };
    let transcript: Transcript = record_of(&run)?;
    match open_phase(&transcript) {
        Some(open) if open == body.phase => {}
        Some(VotePhase::After) => {
            return Err(ApiError::Conflict(
                "the verdict is in: the vote before it has closed".into(),
            ));
        }
        Some(VotePhase::Before) => {
            return Err(ApiError::Conflict(
                "the vote after opens when the verdict is in".into(),
            ));
        }
        None => {
            return Err(ApiError::Conflict(
                "this debate ended without a verdict: voting is closed".into(),
            ));
        }
    }
    let vote = Vote {
        user_id: user.id,
        phase: body.phase,
        choice: body.choice,
    };
    state.store.cast_vote(&run.id, &vote).await?;
    Ok(Json(tally(&state, &run, &transcript, Some(user.id)).await?))
}

/// The phase open for votes: `before` until the verdict, `after` once it is in, none for a
/// debate that ended without one.
fn open_phase(transcript: &Transcript) -> Option<VotePhase> {
    match (transcript.status, &transcript.verdict) {
        (_, Some(_)) => Some(VotePhase::After),
        (Status::Queued | Status::Running, None) => Some(VotePhase::Before),
        _ => None,
    }
}

/// The room's votes on a debate, with `reader`'s own.
pub async fn tally(
    state: &AppState,
    run: &Run,
    transcript: &Transcript,
    reader: Option<i64>,
) -> Result<VoteTally, ApiError> {
    let votes = state.store.votes(&run.id).await?;
    let mut before = VoteCounts::default();
    let mut after = VoteCounts::default();
    let mut mine = MyVotes::default();
    for vote in &votes {
        let (counts, own) = match vote.phase {
            VotePhase::Before => (&mut before, &mut mine.before),
            VotePhase::After => (&mut after, &mut mine.after),
        };
        match vote.choice {
            VoteChoice::A => counts.a += 1,
            VoteChoice::B => counts.b += 1,
            VoteChoice::Undecided => counts.undecided += 1,
        }
        if Some(vote.user_id) == reader {
            *own = Some(vote.choice);
        }
    }
    Ok(VoteTally {
        swing: swing(before, after),
        before,
        after,
        open: open_phase(transcript),
        mine,
    })
}

/// Each side's share after less its share before, in percentage points.
fn swing(before: VoteCounts, after: VoteCounts) -> Option<Sides<f64>> {
    let total = |c: VoteCounts| f64::from(c.a + c.b + c.undecided);
    let (t0, t1) = (total(before), total(after));
    if t0 == 0.0 || t1 == 0.0 {
        return None;
    }
    let points = |was: u32, is: u32| 100.0 * (f64::from(is) / t1 - f64::from(was) / t0);
    Some(Sides {
        a: points(before.a, after.a),
        b: points(before.b, after.b),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_swing_is_each_sides_change_in_share() {
        let before = VoteCounts {
            a: 1,
            b: 2,
            undecided: 1,
        };
        let after = VoteCounts {
            a: 3,
            b: 1,
            undecided: 0,
        };
        let s = swing(before, after).unwrap();
        assert_eq!((s.a, s.b), (50.0, -25.0));
        assert!(swing(VoteCounts::default(), after).is_none());
    }
}
