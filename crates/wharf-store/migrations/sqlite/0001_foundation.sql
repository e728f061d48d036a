-- Accounts, API keys, sessions, operations and the per-account event log.
-- Timestamps are integer milliseconds since the Unix epoch.

CREATE TABLE accounts (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    event_seq   INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL
);

CREATE TABLE api_keys (
    hash          TEXT PRIMARY KEY,
    fingerprint   TEXT NOT NULL UNIQUE,
    account_id    TEXT NOT NULL REFERENCES accounts(id),
    kind          TEXT NOT NULL,
    session_id    TEXT,
    label         TEXT,
    created_at    INTEGER NOT NULL,
    revoked_at    INTEGER
);
CREATE INDEX api_keys_by_account ON api_keys (account_id, created_at);

CREATE TABLE sessions (
    id                TEXT PRIMARY KEY,
    account_id        TEXT NOT NULL REFERENCES accounts(id),
    engine            TEXT NOT NULL,
    status            TEXT NOT NULL,
    status_reason     TEXT,
    label             TEXT,
    phone_number      TEXT,
    paired            INTEGER NOT NULL DEFAULT 0,
    settings          TEXT NOT NULL,
    worker_id         TEXT,
    qr_code           TEXT,
    key_fingerprint   TEXT,
    last_activity_at  INTEGER,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);
CREATE INDEX sessions_by_account ON sessions (account_id, id);

CREATE TABLE operations (
    id           TEXT PRIMARY KEY,
    account_id   TEXT NOT NULL REFERENCES accounts(id),
    session_id   TEXT NOT NULL REFERENCES sessions(id),
    kind         TEXT NOT NULL,
    status       TEXT NOT NULL,
    result       TEXT,
    error        TEXT,
    attempts     INTEGER NOT NULL DEFAULT 0,
    lease_until  INTEGER,
    enqueued_at  INTEGER NOT NULL,
    started_at   INTEGER,
    finished_at  INTEGER
);
CREATE INDEX operations_open ON operations (status, enqueued_at);

CREATE TABLE events (
    account_id  TEXT NOT NULL REFERENCES accounts(id),
    seq         INTEGER NOT NULL,
    id          TEXT NOT NULL UNIQUE,
    session_id  TEXT,
    type        TEXT NOT NULL,
    payload     TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (account_id, seq)
);
