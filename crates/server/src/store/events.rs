//! A run's event log: events packed into rows (a commit's events of one run share a row, so
//! the log's index grows by a row per run per commit, not per event), and read back.

use super::{Store, StoreError};

/// One stored event of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub seq: i64,
    pub name: String,
    /// The event as compact JSON.
    pub data: String,
}

impl StoredEvent {
    /// What kind of event it is, by its name.
    pub fn kind(&self) -> Option<crossfire_engine::event::EventKind> {
        self.name.parse().ok()
    }

    /// The event as the engine sent it; `None` for a row this version cannot read.
    pub fn event(&self) -> Option<crossfire_engine::event::Event> {
        serde_json::from_str(&self.data).ok()
    }
}

/// A run's consecutive events `seq` to `last_seq` in one row of the log. A row of several holds
/// their names separated by spaces and their data one JSON object a line (compact JSON has no
/// raw newline); a row of one holds it as it is.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct EventRow {
    pub(super) seq: i64,
    pub(super) last_seq: i64,
    pub(super) name: String,
    pub(super) data: String,
}

impl EventRow {
    pub(super) fn new(event: &StoredEvent) -> EventRow {
        EventRow {
            seq: event.seq,
            last_seq: event.seq,
            name: event.name.clone(),
            data: event.data.clone(),
        }
    }

    /// Takes `event` if it is the next one and both can share a row; returns whether it did.
    pub(super) fn extend(&mut self, event: &StoredEvent) -> bool {
        // Events from our own serializer always can; anything else keeps a row to itself.
        let joinable = |name: &str, data: &str| !name.contains(' ') && !data.contains('\n');
        let alone = self.seq == self.last_seq;
        if event.seq != self.last_seq + 1
            || !joinable(&event.name, &event.data)
            || (alone && !joinable(&self.name, &self.data))
        {
            return false;
        }
        self.last_seq = event.seq;
        self.name.push(' ');
        self.name.push_str(&event.name);
        self.data.push('\n');
        self.data.push_str(&event.data);
        true
    }

    /// Adds the row's events after `after` to `out`.
    pub(super) fn expand_into(&self, after: i64, out: &mut Vec<StoredEvent>) {
        if self.seq == self.last_seq {
            if self.seq > after {
                out.push(StoredEvent {
                    seq: self.seq,
                    name: self.name.clone(),
                    data: self.data.clone(),
                });
            }
            return;
        }
        let events = self.name.split(' ').zip(self.data.split('\n'));
        for (seq, (name, data)) in (self.seq..).zip(events) {
            if seq > after {
                out.push(StoredEvent {
                    seq,
                    name: name.to_string(),
                    data: data.to_string(),
                });
            }
        }
    }
}

impl Store {
    /// A run's events after sequence number `after`, in order.
    pub async fn events_after(
        &self,
        run_id: &str,
        after: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = sqlx::query_as::<_, EventRow>(
            "SELECT seq, last_seq, name, data FROM run_events \
             WHERE run_id = $1 AND last_seq > $2 ORDER BY seq",
        )
        .bind(run_id)
        .bind(after)
        .fetch_all(&self.pool)
        .await?;
        let mut events = Vec::new();
        for row in &rows {
            row.expand_into(after, &mut events);
        }
        Ok(events)
    }

    /// Whether a run's log holds event `seq`.
    pub async fn has_event(&self, run_id: &str, seq: i64) -> Result<bool, StoreError> {
        let row: Option<(i64,)> = sqlx::query_as(
            "SELECT seq FROM run_events WHERE run_id = $1 AND seq <= $2 AND last_seq >= $2 LIMIT 1",
        )
        .bind(run_id)
        .bind(seq)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// The highest sequence number of a run's log (0 if empty).
    pub async fn last_seq(&self, run_id: &str) -> Result<i64, StoreError> {
        let row: (i64,) =
            sqlx::query_as("SELECT COALESCE(MAX(last_seq), 0) FROM run_events WHERE run_id = $1")
                .bind(run_id)
                .fetch_one(&self.pool)
                .await?;
        Ok(row.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Packs events as the writer does: each joins the row before it when it can.
    fn pack(events: &[StoredEvent]) -> Vec<EventRow> {
        let mut rows: Vec<EventRow> = Vec::new();
        for event in events {
            let joined = rows.last_mut().is_some_and(|row| row.extend(event));
            if !joined {
                rows.push(EventRow::new(event));
            }
        }
        rows
    }

    fn numbered(raw: Vec<(String, String)>) -> Vec<StoredEvent> {
        (1..)
            .zip(raw)
            .map(|(seq, (name, data))| StoredEvent { seq, name, data })
            .collect()
    }

    proptest! {
        /// Whatever the names and data (spaces and line breaks included), packed rows read
        /// back event by event, each once, in order, from any point.
        #[test]
        fn packed_rows_read_back_event_by_event_from_any_point(
            raw in proptest::collection::vec(("[a-z_ ]{1,8}", "[ -~\n]{0,24}"), 1..40),
            cut in 0usize..41,
        ) {
            let events = numbered(raw);
            let rows = pack(&events);
            let after = (cut % (events.len() + 1)) as i64;
            let mut read = Vec::new();
            for row in rows.iter().filter(|r| r.last_seq > after) {
                row.expand_into(after, &mut read);
            }
            prop_assert_eq!(&read[..], &events[after as usize..]);
        }

        /// Events as the service writes them (plain names, compact JSON) share one row.
        #[test]
        fn the_services_own_events_share_a_row(texts in proptest::collection::vec(".{0,30}", 1..30)) {
            let raw = texts
                .iter()
                .map(|t| ("token".to_string(), serde_json::json!({"text": t}).to_string()))
                .collect();
            let rows = pack(&numbered(raw));
            prop_assert_eq!(rows.len(), 1);
        }
    }
}
