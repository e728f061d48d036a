-- Counter changes of broadcasts not yet folded into their row. The transactions that move a
-- broadcast's recipients without owning the broadcast (dispatch outcomes and receipts of its
-- messages, and, on PostgreSQL, additions to a draft) append one row here instead of updating
-- the broadcast's counters: an update would hold the broadcast's row lock through the commit's
-- WAL flush and serialize them all (3,128 sends/s at a million recipients, waiting on
-- `Lock:transactionid`). Whoever locks the broadcast (its worker, at least every 100 ms while
-- it sends; any change of state) folds these rows into it in the same transaction, and reads
-- add the rows not folded yet, so the counters stay exact and are never recounted.
CREATE TABLE broadcast_tallies (
    broadcast_id TEXT COLLATE "C" NOT NULL,
    recipients   BIGINT NOT NULL DEFAULT 0,
    -- The highest recipient position an addition used (0 when none).
    last_seq     BIGINT NOT NULL DEFAULT 0,
    n_pending    BIGINT NOT NULL DEFAULT 0,
    n_sent       BIGINT NOT NULL DEFAULT 0,
    n_delivered  BIGINT NOT NULL DEFAULT 0,
    n_read       BIGINT NOT NULL DEFAULT 0,
    n_failed     BIGINT NOT NULL DEFAULT 0,
    n_skipped    BIGINT NOT NULL DEFAULT 0,
    n_cancelled  BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX broadcast_tallies_by_broadcast ON broadcast_tallies (broadcast_id);

-- Recipient positions on PostgreSQL come from one sequence, so additions to one draft run side
-- by side instead of queuing on the broadcast's `next_seq`. Positions only order a broadcast's
-- recipients; gaps do not matter. It starts past every position already handed out.
CREATE SEQUENCE broadcast_recipient_seq;
SELECT setval('broadcast_recipient_seq', GREATEST((SELECT MAX(next_seq) FROM broadcasts), 0) + 1, false);
