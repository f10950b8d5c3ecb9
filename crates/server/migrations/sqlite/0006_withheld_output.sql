-- Sentences a model wrote that screening kept from readers (refused) or let through and
-- flagged: for editors only, never part of a run's event log, transcript or exports.
CREATE TABLE withheld_output (
    id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    round BIGINT NOT NULL,
    speaker TEXT NOT NULL,
    text TEXT NOT NULL,
    category TEXT NOT NULL,
    rule TEXT NOT NULL,
    refused BIGINT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX withheld_output_by_run ON withheld_output (run_id, at);
