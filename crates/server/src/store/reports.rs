//! Readers' reports and the editors' cases. A case gathers the open reports of one run (a
//! reader reporting twice counts once); screening opens one by itself when it refused a run's
//! output. Resolving a case hides the run, dismisses the reports, or restores a hidden run —
//! each in one transaction with its audit entry.

use serde::Serialize;
use sqlx::Row;

use super::audit::{Audit, AuditAction};
use super::{Store, StoreError, User, now_ms};

crossfire_engine::named_enum! {
    /// Why a reader reports a debate or perspective.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, utoipa::ToSchema)]
    pub enum ReportReason("report reason") {
        Hateful = "hateful",
        Harassment = "harassment",
        Sexual = "sexual",
        Violent = "violent",
        Misinformation = "misinformation",
        Other = "other",
    }
}

crossfire_engine::named_enum! {
    /// Where a case stands.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
    pub enum CaseState("case state") {
        /// Waiting for an editor.
        Open = "open",
        /// The run is down.
        Hidden = "hidden",
        /// The reports were closed; the run stayed up.
        Dismissed = "dismissed",
        /// The run was hidden, then put back up.
        Restored = "restored",
    }
}

crossfire_engine::named_enum! {
    /// What an editor does with a case.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
    pub enum Resolution("resolution") {
        /// An open case: take the run down everywhere (its share link and exports answer
        /// 410, its owner is told why).
        Hide = "hide",
        /// An open case: close its reports, keep the run up.
        Dismiss = "dismiss",
        /// A hidden case: put the run back up.
        Restore = "restore",
    }
}

impl Resolution {
    /// The state a case must be in, and the one it moves to.
    fn states(self) -> (CaseState, CaseState) {
        match self {
            Resolution::Hide => (CaseState::Open, CaseState::Hidden),
            Resolution::Dismiss => (CaseState::Open, CaseState::Dismissed),
            Resolution::Restore => (CaseState::Hidden, CaseState::Restored),
        }
    }

    fn action(self) -> AuditAction {
        match self {
            Resolution::Hide => AuditAction::Hide,
            Resolution::Dismiss => AuditAction::Dismiss,
            Resolution::Restore => AuditAction::Restore,
        }
    }
}

/// A reader's report, as editors read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Report {
    pub reason: ReportReason,
    pub note: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub at: i64,
}

/// A case as stored: the run it is about, its state, and its reports, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    pub id: String,
    pub run_id: String,
    pub state: CaseState,
    /// Opened by screening (it refused some of the run's output), not by a reader.
    pub screened: bool,
    pub opened_at: i64,
    /// The editor who resolved it, when, and their note.
    pub resolved_by: Option<String>,
    pub resolved_at: Option<i64>,
    pub note: Option<String>,
    pub reports: Vec<Report>,
}

/// A case that cannot be resolved as asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolveRefused {
    /// No case has this id.
    Unknown,
    /// The case is not in the state the resolution needs (it is in this one).
    Already(CaseState),
}

/// The columns a case is read from (with `c.`), and the report columns beside them.
const CASE_ROWS: &str = "SELECT c.id, c.run_id, c.state, c.screened, c.opened_at, u.email AS resolver, \
     c.resolved_at, c.note AS case_note, r.reason, r.note AS report_note, r.created_at AS reported_at \
     FROM report_cases c LEFT JOIN users u ON u.id = c.resolved_by \
     LEFT JOIN reports r ON r.case_id = c.id";

impl Store {
    /// Records a reader's report of run `run_id`, opening a case if none is open. `reporter`
    /// names the reader (`user:…`, or `address:…` for a shared link's visitor): the same
    /// reader reporting again while the case is open is not counted twice. True if counted.
    pub async fn report(
        &self,
        run_id: &str,
        reporter: &str,
        reason: ReportReason,
        note: Option<&str>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let case_id = open_case(&mut tx, run_id, false).await?;
        let done = sqlx::query(
            "INSERT INTO reports (id, case_id, reporter, reason, note, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(crossfire_engine::transcript::new_id())
        .bind(&case_id)
        .bind(reporter)
        .bind(reason.as_str())
        .bind(note)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Opens a case for a run whose output screening refused, unless one is open.
    pub async fn open_screened_case(&self, run_id: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        open_case(&mut tx, run_id, true).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The cases in `state`, oldest first, at most `limit` of them.
    pub async fn cases(&self, state: CaseState, limit: i64) -> Result<Vec<Case>, StoreError> {
        let sql = format!(
            "{CASE_ROWS} WHERE c.id IN (SELECT id FROM report_cases WHERE state = $1 \
             ORDER BY opened_at, id LIMIT $2) ORDER BY c.opened_at, c.id, r.created_at, r.id"
        );
        let rows = sqlx::query(&sql)
            .bind(state.as_str())
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(gather(&rows)?)
    }

    /// Resolves a case as `editor`, with the note its run's owner is told when it is hidden;
    /// the run, the case and the audit entry change together.
    pub async fn resolve(
        &self,
        case_id: &str,
        resolution: Resolution,
        editor: &User,
        note: Option<&str>,
    ) -> Result<Result<Case, ResolveRefused>, StoreError> {
        let (from, to) = resolution.states();
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query("SELECT run_id, state FROM report_cases WHERE id = $1")
            .bind(case_id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            return Ok(Err(ResolveRefused::Unknown));
        };
        let run_id: String = row.try_get("run_id")?;
        let now = now_ms();
        let moved = sqlx::query(
            "UPDATE report_cases SET state = $1, resolved_by = $2, resolved_at = $3, note = $4 \
             WHERE id = $5 AND state = $6",
        )
        .bind(to.as_str())
        .bind(editor.id)
        .bind(now)
        .bind(note)
        .bind(case_id)
        .bind(from.as_str())
        .execute(&mut *tx)
        .await?;
        if moved.rows_affected() == 0 {
            let state = super::decode::<CaseState>(&row, "state")?;
            return Ok(Err(ResolveRefused::Already(state)));
        }
        match resolution {
            Resolution::Hide => {
                sqlx::query("UPDATE runs SET removed_at = $1, removed_note = $2 WHERE id = $3")
                    .bind(now)
                    .bind(note)
                    .bind(&run_id)
                    .execute(&mut *tx)
                    .await?;
            }
            Resolution::Restore => {
                sqlx::query("UPDATE runs SET removed_at = NULL, removed_note = NULL WHERE id = $1")
                    .bind(&run_id)
                    .execute(&mut *tx)
                    .await?;
            }
            Resolution::Dismiss => {}
        }
        let entry = Audit {
            by: &editor.email,
            action: resolution.action(),
            target: &run_id,
            note,
        };
        entry.append(&mut tx).await?;
        let sql = format!("{CASE_ROWS} WHERE c.id = $1 ORDER BY r.created_at, r.id");
        let rows = sqlx::query(&sql).bind(case_id).fetch_all(&mut *tx).await?;
        let case = gather(&rows)?.pop().ok_or(sqlx::Error::RowNotFound)?;
        tx.commit().await?;
        Ok(Ok(case))
    }
}

/// The open case of a run, opened now if there is none.
async fn open_case(
    tx: &mut sqlx::AnyConnection,
    run_id: &str,
    screened: bool,
) -> Result<String, StoreError> {
    sqlx::query(
        "INSERT INTO report_cases (id, run_id, state, screened, opened_at) \
         VALUES ($1, $2, 'open', $3, $4) ON CONFLICT DO NOTHING",
    )
    .bind(crossfire_engine::transcript::new_id())
    .bind(run_id)
    .bind(i64::from(screened))
    .bind(now_ms())
    .execute(&mut *tx)
    .await?;
    let row = sqlx::query("SELECT id FROM report_cases WHERE run_id = $1 AND state = 'open'")
        .bind(run_id)
        .fetch_one(&mut *tx)
        .await?;
    Ok(row.try_get("id")?)
}

/// Cases from rows of [`CASE_ROWS`], a row per report, in the rows' order.
fn gather(rows: &[sqlx::any::AnyRow]) -> Result<Vec<Case>, sqlx::Error> {
    let mut cases: Vec<Case> = Vec::new();
    for row in rows {
        let id: String = row.try_get("id")?;
        if cases.last().is_none_or(|case| case.id != id) {
            cases.push(Case {
                id,
                run_id: row.try_get("run_id")?,
                state: super::decode(row, "state")?,
                screened: row.try_get::<i64, _>("screened")? != 0,
                opened_at: row.try_get("opened_at")?,
                resolved_by: row.try_get("resolver")?,
                resolved_at: row.try_get("resolved_at")?,
                note: row.try_get("case_note")?,
                reports: Vec::new(),
            });
        }
        let reason: Option<String> = row.try_get("reason")?;
        if let (Some(reason), Some(case)) = (reason, cases.last_mut()) {
            case.reports.push(Report {
                reason: reason.parse().map_err(|e| sqlx::Error::ColumnDecode {
                    index: "reason".into(),
                    source: Box::new(e),
                })?,
                note: row.try_get("report_note")?,
                at: row.try_get("reported_at")?,
            });
        }
    }
    Ok(cases)
}
