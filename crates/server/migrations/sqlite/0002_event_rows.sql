-- A row holds a run's consecutive events `seq` to `last_seq`: their names separated by spaces,
-- their data one compact JSON object a line. The writer stores a run's events of one commit
-- as one row, so a commit adds a row per run, not one per event. Rows so far hold one event.
ALTER TABLE run_events ADD COLUMN last_seq BIGINT NOT NULL DEFAULT 0;
UPDATE run_events SET last_seq = seq;
