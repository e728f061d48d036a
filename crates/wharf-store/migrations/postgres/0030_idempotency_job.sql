-- The hourly expiry of idempotency keys is a scheduled job claimed through the database, like
-- the events retention: however many instances share the database, one runs each round.
INSERT INTO scheduled_jobs (name, next_run_at) VALUES ('idempotency_expiry', 0);
