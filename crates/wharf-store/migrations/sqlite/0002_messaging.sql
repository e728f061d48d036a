-- Messages, their outbox, idempotency keys, webhooks and their deliveries.

ALTER TABLE events ADD COLUMN message_id TEXT;
CREATE INDEX events_by_message ON events (message_id) WHERE message_id IS NOT NULL;

CREATE TABLE messages (
    id                TEXT PRIMARY KEY,
    account_id        TEXT NOT NULL REFERENCES accounts(id),
    session_id        TEXT NOT NULL REFERENCES sessions(id),
    direction         TEXT NOT NULL,
    chat_jid          TEXT NOT NULL,
    sender_jid        TEXT,
    kind              TEXT NOT NULL,
    content           TEXT NOT NULL,
    status            TEXT NOT NULL,
    provider_msg_id   TEXT,
    quoted_message_id TEXT,
    failure_reason    TEXT,
    attempts          INTEGER NOT NULL DEFAULT 0,
    accepted_at       INTEGER NOT NULL,
    sent_at           INTEGER,
    delivered_at      INTEGER,
    read_at           INTEGER,
    played_at         INTEGER,
    failed_at         INTEGER,
    deleted_at        INTEGER,
    edited_at         INTEGER,
    updated_at        INTEGER NOT NULL
);
CREATE INDEX messages_by_session ON messages (session_id, id);
CREATE INDEX messages_by_chat ON messages (session_id, chat_jid, id);
CREATE UNIQUE INDEX messages_by_provider_id ON messages (session_id, provider_msg_id);

-- Work for the dispatcher: sends and actions, drained per session in id order.
CREATE TABLE outbox (
    id            TEXT PRIMARY KEY,
    account_id    TEXT NOT NULL,
    session_id    TEXT NOT NULL,
    chat_jid      TEXT NOT NULL,
    message_id    TEXT,
    action        TEXT NOT NULL,
    payload       TEXT NOT NULL,
    available_at  INTEGER NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,
    created_at    INTEGER NOT NULL
);
CREATE INDEX outbox_by_session ON outbox (session_id, id);
CREATE INDEX outbox_by_message ON outbox (message_id);

CREATE TABLE idempotency_keys (
    account_id    TEXT NOT NULL,
    key           TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    status_code   INTEGER NOT NULL,
    response      TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (account_id, key)
);

CREATE TABLE webhooks (
    id                 TEXT PRIMARY KEY,
    account_id         TEXT NOT NULL REFERENCES accounts(id),
    target_url         TEXT NOT NULL,
    subscribed_events  TEXT NOT NULL,
    session_id         TEXT,
    is_active          INTEGER NOT NULL,
    signing_secret     TEXT NOT NULL,
    description        TEXT,
    event_cursor       INTEGER NOT NULL,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
);
CREATE INDEX webhooks_by_account ON webhooks (account_id, id);

CREATE TABLE webhook_deliveries (
    id               TEXT PRIMARY KEY,
    webhook_id       TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    account_id       TEXT NOT NULL,
    event_seq        INTEGER NOT NULL,
    event_id         TEXT NOT NULL,
    event_type       TEXT NOT NULL,
    status           TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER,
    lease_until      INTEGER,
    last_status_code INTEGER,
    last_error       TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    delivered_at     INTEGER
);
CREATE UNIQUE INDEX webhook_deliveries_once ON webhook_deliveries (webhook_id, event_seq);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook_id, id);

CREATE TABLE webhook_attempts (
    id            TEXT PRIMARY KEY,
    delivery_id   TEXT NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    attempted_at  INTEGER NOT NULL,
    status_code   INTEGER,
    error         TEXT,
    duration_ms   INTEGER NOT NULL
);
CREATE INDEX webhook_attempts_by_delivery ON webhook_attempts (delivery_id, attempted_at);
