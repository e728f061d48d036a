-- Accounts, API keys, sessions, operations and the per-account event log.
-- Timestamps are integer milliseconds since the Unix epoch.

CREATE TABLE accounts (
    id          TEXT COLLATE "C" PRIMARY KEY,
    name        TEXT NOT NULL,
    event_seq   BIGINT NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL
);

CREATE TABLE api_keys (
    hash          TEXT COLLATE "C" PRIMARY KEY,
    fingerprint   TEXT NOT NULL UNIQUE,
    account_id    TEXT NOT NULL REFERENCES accounts(id),
    kind          TEXT NOT NULL,
    session_id    TEXT COLLATE "C",
    label         TEXT,
    created_at    BIGINT NOT NULL,
    revoked_at    BIGINT
);
CREATE INDEX api_keys_by_account ON api_keys (account_id, created_at);

CREATE TABLE sessions (
    id                TEXT COLLATE "C" PRIMARY KEY,
    account_id        TEXT NOT NULL REFERENCES accounts(id),
    engine            TEXT NOT NULL,
    status            TEXT NOT NULL,
    status_reason     TEXT,
    label             TEXT,
    phone_number      TEXT,
    paired            BIGINT NOT NULL DEFAULT 0,
    settings          TEXT NOT NULL,
    worker_id         TEXT,
    qr_code           TEXT,
    key_fingerprint   TEXT,
    last_activity_at  BIGINT,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);
CREATE INDEX sessions_by_account ON sessions (account_id, id);

CREATE TABLE operations (
    id           TEXT COLLATE "C" PRIMARY KEY,
    account_id   TEXT NOT NULL REFERENCES accounts(id),
    session_id   TEXT NOT NULL REFERENCES sessions(id),
    kind         TEXT NOT NULL,
    status       TEXT NOT NULL,
    result       TEXT,
    error        TEXT,
    attempts     BIGINT NOT NULL DEFAULT 0,
    lease_until  BIGINT,
    enqueued_at  BIGINT NOT NULL,
    started_at   BIGINT,
    finished_at  BIGINT
);
CREATE INDEX operations_open ON operations (status, enqueued_at);

CREATE TABLE events (
    account_id  TEXT NOT NULL REFERENCES accounts(id),
    seq         BIGINT NOT NULL,
    id          TEXT NOT NULL UNIQUE,
    session_id  TEXT,
    type        TEXT NOT NULL,
    payload     TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (account_id, seq)
);
