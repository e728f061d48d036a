-- Broadcasts of the Zernio Business API: one approved template to many recipients of a
-- session, sent by a durable worker in batches. Counters are kept incrementally (never
-- recounted): each `n_*` is the number of recipients whose current status is that one.
-- Timestamps are integer milliseconds since the Unix epoch.
CREATE TABLE broadcasts (
    id              TEXT PRIMARY KEY,
    account_id      TEXT NOT NULL REFERENCES accounts(id),
    session_id      TEXT NOT NULL REFERENCES sessions(id),
    name            TEXT NOT NULL,
    description     TEXT,
    -- JSON {name, language, components}.
    template        TEXT NOT NULL,
    -- draft, scheduled, sending, completed, failed, cancelled.
    status          TEXT NOT NULL,
    failure_reason  TEXT,
    scheduled_at    INTEGER,
    started_at      INTEGER,
    completed_at    INTEGER,
    recipient_count INTEGER NOT NULL DEFAULT 0,
    -- The next recipient's position; recipients at or below `cursor_seq` were turned into
    -- messages (or skipped) by the worker, in the same transaction as that move.
    next_seq        INTEGER NOT NULL DEFAULT 0,
    cursor_seq      INTEGER NOT NULL DEFAULT 0,
    processed       INTEGER NOT NULL DEFAULT 0,
    n_pending       INTEGER NOT NULL DEFAULT 0,
    n_sent          INTEGER NOT NULL DEFAULT 0,
    n_delivered     INTEGER NOT NULL DEFAULT 0,
    n_read          INTEGER NOT NULL DEFAULT 0,
    n_failed        INTEGER NOT NULL DEFAULT 0,
    n_skipped       INTEGER NOT NULL DEFAULT 0,
    n_cancelled     INTEGER NOT NULL DEFAULT 0,
    -- When the last broadcast.progress event was written (at most one a second).
    progress_at     INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX broadcasts_by_session ON broadcasts (session_id, id);
CREATE INDEX broadcasts_by_status ON broadcasts (status, scheduled_at);

CREATE TABLE broadcast_recipients (
    broadcast_id TEXT NOT NULL REFERENCES broadcasts(id) ON DELETE CASCADE,
    seq          INTEGER NOT NULL,
    -- E.164 with '+'.
    phone        TEXT NOT NULL,
    name         TEXT,
    -- A JSON object of strings, or NULL.
    variables    TEXT,
    -- pending, sent, delivered, read, failed, skipped, cancelled.
    status       TEXT NOT NULL,
    message_id   TEXT,
    error        TEXT,
    sent_at      INTEGER,
    delivered_at INTEGER,
    read_at      INTEGER,
    PRIMARY KEY (broadcast_id, seq)
);
CREATE UNIQUE INDEX broadcast_recipients_by_phone ON broadcast_recipients (broadcast_id, phone);
CREATE INDEX broadcast_recipients_by_status ON broadcast_recipients (broadcast_id, status, seq);
CREATE INDEX broadcast_recipients_by_message ON broadcast_recipients (message_id) WHERE message_id IS NOT NULL;
