-- Trial runs: an editor's draft persona in a debate or perspective, kept out of readers' lists.
ALTER TABLE runs ADD COLUMN trial BIGINT NOT NULL DEFAULT 0;

-- Who saved which version of an editor's file, and when; the previous version is kept on disk.
CREATE TABLE file_saves (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,               -- persona | template
    name TEXT NOT NULL,               -- the persona id, or the template's file name
    version TEXT NOT NULL,
    previous_version TEXT,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    saved_at BIGINT NOT NULL
);
CREATE INDEX file_saves_by_name ON file_saves (kind, name, saved_at);
