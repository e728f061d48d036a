-- Retention of the event log (events_retention_days): each account's last cursor removed by
-- retention, so a reader resuming before it is told where the log now starts.
ALTER TABLE accounts ADD COLUMN events_pruned_seq INTEGER NOT NULL DEFAULT 0;

-- Background jobs that one instance runs at a time, however many share the database: an
-- instance claims a due job under a lease (lease_until), extends it while it works, and sets
-- the next run when done. A lease left by a crash expires.
CREATE TABLE scheduled_jobs (
    name         TEXT PRIMARY KEY,
    next_run_at  INTEGER NOT NULL,
    holder       TEXT,
    lease_until  INTEGER
);
INSERT INTO scheduled_jobs (name, next_run_at) VALUES ('events_retention', 0);
