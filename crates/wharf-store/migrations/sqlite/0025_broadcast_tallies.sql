-- Counter changes of broadcasts not yet folded into their row. The transactions that move a
-- broadcast's recipients without owning the broadcast (dispatch outcomes and receipts of its
-- messages) append one row here instead of updating the broadcast's counters (on PostgreSQL
-- that update held the broadcast's row lock through every commit and serialized them; SQLite
-- keeps the same scheme so both backends behave alike). Whoever changes the broadcast (its
-- worker, at least every 100 ms while it sends; any change of state) folds these rows into it
-- in the same transaction, and reads add the rows not folded yet, so the counters stay exact
-- and are never recounted.
CREATE TABLE broadcast_tallies (
    broadcast_id TEXT NOT NULL,
    recipients   INTEGER NOT NULL DEFAULT 0,
    -- The highest recipient position an addition used (0 when none).
    last_seq     INTEGER NOT NULL DEFAULT 0,
    n_pending    INTEGER NOT NULL DEFAULT 0,
    n_sent       INTEGER NOT NULL DEFAULT 0,
    n_delivered  INTEGER NOT NULL DEFAULT 0,
    n_read       INTEGER NOT NULL DEFAULT 0,
    n_failed     INTEGER NOT NULL DEFAULT 0,
    n_skipped    INTEGER NOT NULL DEFAULT 0,
    n_cancelled  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX broadcast_tallies_by_broadcast ON broadcast_tallies (broadcast_id);
