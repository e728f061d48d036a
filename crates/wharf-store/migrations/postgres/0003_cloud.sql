-- The Cloud API engine: each cloud session's Graph credentials (secrets sealed with the
-- server's key), the customer-service window of each chat, and template review outcomes.

CREATE TABLE cloud_sessions (
    session_id             TEXT COLLATE "C" PRIMARY KEY REFERENCES sessions(id),
    account_id             TEXT NOT NULL,
    phone_number_id        TEXT NOT NULL UNIQUE,
    waba_id                TEXT NOT NULL,
    -- Sealed (AEAD with the server's secret_key), base64; never returned by the API.
    access_token           TEXT NOT NULL,
    app_secret             TEXT NOT NULL,
    -- SHA-256 (hex) of the webhook verify token, to find the session of a handshake.
    verify_token_hash      TEXT NOT NULL,
    -- NULL: the server's default.
    graph_base_url         TEXT,
    graph_version          TEXT,
    throughput_per_second  BIGINT,
    created_at             BIGINT NOT NULL,
    updated_at             BIGINT NOT NULL
);
CREATE INDEX cloud_sessions_by_waba ON cloud_sessions (waba_id);
CREATE INDEX cloud_sessions_by_verify_token ON cloud_sessions (verify_token_hash);

-- The last time each chat wrote to a session (WhatsApp's time), for the 24-hour window.
CREATE TABLE chat_windows (
    session_id       TEXT NOT NULL,
    chat_jid         TEXT NOT NULL,
    last_inbound_at  BIGINT NOT NULL,
    PRIMARY KEY (session_id, chat_jid)
);

-- The latest review outcome of each template, from Meta's template status webhooks.
CREATE TABLE cloud_templates (
    waba_id      TEXT NOT NULL,
    template_id  TEXT NOT NULL,
    name         TEXT NOT NULL,
    language     TEXT NOT NULL,
    status       TEXT NOT NULL,
    reason       TEXT,
    -- Meta's time of the change (ms), so a redelivered older update does not win.
    event_at     BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (waba_id, template_id)
);
