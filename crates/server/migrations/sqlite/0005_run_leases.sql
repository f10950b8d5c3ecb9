-- The instance executing a run, and until when its claim holds (ms since the epoch). An
-- instance renews the claims of the runs it executes; a run whose claim has lapsed was left
-- by an instance that stopped, and another instance takes it over and resumes it.
ALTER TABLE runs ADD COLUMN owner TEXT;
ALTER TABLE runs ADD COLUMN lease_until BIGINT;
-- Renewing claims and looking for lapsed ones runs every few seconds on every instance:
-- it reads the unfinished runs only.
CREATE INDEX runs_by_status ON runs (status, owner);
