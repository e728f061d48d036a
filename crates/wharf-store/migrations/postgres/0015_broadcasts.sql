-- Broadcasts of the Zernio Business API: one approved template to many recipients of a
-- session, sent by a durable worker in batches. Counters are kept incrementally (never
-- recounted): each `n_*` is the number of recipients whose current status is that one.
-- Timestamps are integer milliseconds since the Unix epoch.
CREATE TABLE broadcasts (
    id              TEXT COLLATE "C" PRIMARY KEY,
    account_id      TEXT NOT NULL REFERENCES accounts(id),
    session_id      TEXT COLLATE "C" NOT NULL REFERENCES sessions(id),
    name            TEXT NOT NULL,
    description     TEXT,
    -- JSON {name, language, components}.
    template        TEXT NOT NULL,
    -- draft, scheduled, sending, completed, failed, cancelled.
    status          TEXT NOT NULL,
    failure_reason  TEXT,
    scheduled_at    BIGINT,
    started_at      BIGINT,
    completed_at    BIGINT,
    recipient_count BIGINT NOT NULL DEFAULT 0,
    -- The next recipient's position; recipients at or below `cursor_seq` were turned into
    -- messages (or skipped) by the worker, in the same transaction as that move.
    next_seq        BIGINT NOT NULL DEFAULT 0,
    cursor_seq      BIGINT NOT NULL DEFAULT 0,
    processed       BIGINT NOT NULL DEFAULT 0,
    n_pending       BIGINT NOT NULL DEFAULT 0,
    n_sent          BIGINT NOT NULL DEFAULT 0,
    n_delivered     BIGINT NOT NULL DEFAULT 0,
    n_read          BIGINT NOT NULL DEFAULT 0,
    n_failed        BIGINT NOT NULL DEFAULT 0,
    n_skipped       BIGINT NOT NULL DEFAULT 0,
    n_cancelled     BIGINT NOT NULL DEFAULT 0,
    -- When the last broadcast.progress event was written (at most one a second).
    progress_at     BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX broadcasts_by_session ON broadcasts (session_id, id);
CREATE INDEX broadcasts_by_status ON broadcasts (status, scheduled_at);

CREATE TABLE broadcast_recipients (
    broadcast_id TEXT COLLATE "C" NOT NULL REFERENCES broadcasts(id) ON DELETE CASCADE,
    seq          BIGINT NOT NULL,
    -- E.164 with '+'.
    phone        TEXT COLLATE "C" NOT NULL,
    name         TEXT,
    -- A JSON object of strings, or NULL.
    variables    TEXT,
    -- pending, sent, delivered, read, failed, skipped, cancelled.
    status       TEXT NOT NULL,
    message_id   TEXT COLLATE "C",
    error        TEXT,
    sent_at      BIGINT,
    delivered_at BIGINT,
    read_at      BIGINT,
    PRIMARY KEY (broadcast_id, seq)
);
CREATE UNIQUE INDEX broadcast_recipients_by_phone ON broadcast_recipients (broadcast_id, phone);
CREATE INDEX broadcast_recipients_by_status ON broadcast_recipients (broadcast_id, status, seq);
CREATE INDEX broadcast_recipients_by_message ON broadcast_recipients (message_id) WHERE message_id IS NOT NULL;
