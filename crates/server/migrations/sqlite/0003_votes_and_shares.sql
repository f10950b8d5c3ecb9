-- Readers' votes on a debate's motion, Oxford style: one per reader per phase ('before' the
-- verdict, 'after' it), changeable while its phase is open.
CREATE TABLE votes (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    phase TEXT NOT NULL,              -- before | after
    choice TEXT NOT NULL,             -- a | b | undecided
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (run_id, user_id, phase)
);

-- A finished debate its owner shared: anyone with the token's link may read it.
ALTER TABLE runs ADD COLUMN share_token TEXT;
CREATE UNIQUE INDEX runs_by_share_token ON runs (share_token);
