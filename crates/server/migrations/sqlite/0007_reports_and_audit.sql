-- Readers' reports and what editors did with them. A case gathers the open reports of one
-- run; it also opens by itself when screening refused a run's output. Editors resolve a case:
-- hide the run, dismiss the reports, or (for a hidden run) restore it.
CREATE TABLE report_cases (
    id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    state TEXT NOT NULL,              -- open | hidden | dismissed | restored
    screened BIGINT NOT NULL,         -- 1: opened by screening, not by a reader
    opened_at BIGINT NOT NULL,
    resolved_by BIGINT REFERENCES users(id) ON DELETE SET NULL,
    resolved_at BIGINT,
    note TEXT
);
-- At most one open case per run: a second report joins it.
CREATE UNIQUE INDEX report_cases_open_per_run ON report_cases (run_id) WHERE state = 'open';
CREATE INDEX report_cases_by_state ON report_cases (state, opened_at);

CREATE TABLE reports (
    id TEXT PRIMARY KEY,
    case_id TEXT NOT NULL REFERENCES report_cases(id) ON DELETE CASCADE,
    reporter TEXT NOT NULL,           -- user:<id>, or address:<hash> for a shared link's visitor
    reason TEXT NOT NULL,
    note TEXT,
    created_at BIGINT NOT NULL,
    UNIQUE (case_id, reporter)
);

-- Set while editors keep a run down; the note is what its owner is told.
ALTER TABLE runs ADD COLUMN removed_at BIGINT;
ALTER TABLE runs ADD COLUMN removed_note TEXT;

-- Every editor action, append-only: the triggers refuse to change or delete an entry.
CREATE TABLE audit_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,              -- the editor's email, or `command line`
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    note TEXT
);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

-- Model tokens spent by the whole deployment per UTC day, for the daily budget.
CREATE TABLE token_spend (
    day TEXT PRIMARY KEY,
    tokens BIGINT NOT NULL
);
