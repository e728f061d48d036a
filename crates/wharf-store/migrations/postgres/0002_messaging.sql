-- Messages, their outbox, idempotency keys, webhooks and their deliveries.

ALTER TABLE events ADD COLUMN message_id TEXT;
CREATE INDEX events_by_message ON events (message_id) WHERE message_id IS NOT NULL;

CREATE TABLE messages (
    id                TEXT COLLATE "C" PRIMARY KEY,
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
    attempts          BIGINT NOT NULL DEFAULT 0,
    accepted_at       BIGINT NOT NULL,
    sent_at           BIGINT,
    delivered_at      BIGINT,
    read_at           BIGINT,
    played_at         BIGINT,
    failed_at         BIGINT,
    deleted_at        BIGINT,
    edited_at         BIGINT,
    updated_at        BIGINT NOT NULL
);
CREATE INDEX messages_by_session ON messages (session_id, id);
CREATE INDEX messages_by_chat ON messages (session_id, chat_jid, id);
CREATE UNIQUE INDEX messages_by_provider_id ON messages (session_id, provider_msg_id);

-- Work for the dispatcher: sends and actions, drained per session in id order.
CREATE TABLE outbox (
    id            TEXT COLLATE "C" PRIMARY KEY,
    account_id    TEXT NOT NULL,
    session_id    TEXT NOT NULL,
    chat_jid      TEXT NOT NULL,
    message_id    TEXT,
    action        TEXT NOT NULL,
    payload       TEXT NOT NULL,
    available_at  BIGINT NOT NULL,
    attempts      BIGINT NOT NULL DEFAULT 0,
    last_error    TEXT,
    created_at    BIGINT NOT NULL
);
CREATE INDEX outbox_by_session ON outbox (session_id, id);
CREATE INDEX outbox_by_message ON outbox (message_id);

CREATE TABLE idempotency_keys (
    account_id    TEXT NOT NULL,
    key           TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    status_code   BIGINT NOT NULL,
    response      TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (account_id, key)
);

CREATE TABLE webhooks (
    id                 TEXT COLLATE "C" PRIMARY KEY,
    account_id         TEXT NOT NULL REFERENCES accounts(id),
    target_url         TEXT NOT NULL,
    subscribed_events  TEXT NOT NULL,
    session_id         TEXT,
    is_active          BIGINT NOT NULL,
    signing_secret     TEXT NOT NULL,
    description        TEXT,
    event_cursor       BIGINT NOT NULL,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL
);
CREATE INDEX webhooks_by_account ON webhooks (account_id, id);

CREATE TABLE webhook_deliveries (
    id               TEXT COLLATE "C" PRIMARY KEY,
    webhook_id       TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    account_id       TEXT NOT NULL,
    event_seq        BIGINT NOT NULL,
    event_id         TEXT NOT NULL,
    event_type       TEXT NOT NULL,
    status           TEXT NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT,
    lease_until      BIGINT,
    last_status_code BIGINT,
    last_error       TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    delivered_at     BIGINT
);
CREATE UNIQUE INDEX webhook_deliveries_once ON webhook_deliveries (webhook_id, event_seq);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook_id, id);

CREATE TABLE webhook_attempts (
    id            TEXT COLLATE "C" PRIMARY KEY,
    delivery_id   TEXT NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    attempted_at  BIGINT NOT NULL,
    status_code   BIGINT,
    error         TEXT,
    duration_ms   BIGINT NOT NULL
);
CREATE INDEX webhook_attempts_by_delivery ON webhook_attempts (delivery_id, attempted_at);
