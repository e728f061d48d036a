-- Message templates of each session (the Zernio Business API). On web and emulator sessions
-- they are Wharf's own (the source of truth); on cloud sessions each row mirrors one of
-- Meta's, refreshed from Graph and from the template status webhook, so a send checks the
-- template before anything is queued without calling Graph.
CREATE TABLE templates (
    id           TEXT PRIMARY KEY,
    account_id   TEXT NOT NULL,
    session_id   TEXT NOT NULL REFERENCES sessions(id),
    name         TEXT NOT NULL,
    language     TEXT NOT NULL,
    category     TEXT NOT NULL,
    -- APPROVED, PENDING, REJECTED, PAUSED, DISABLED, … (Meta's words).
    status       TEXT NOT NULL,
    reason       TEXT,
    -- The components as created (Meta's JSON shape).
    components   TEXT NOT NULL,
    -- Meta's template id (cloud sessions only).
    external_id  TEXT,
    -- When the status last changed (ms; Meta's time for webhook updates), so an older
    -- redelivered review outcome does not win.
    status_at    INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    UNIQUE (session_id, name, language)
);
CREATE INDEX templates_by_external_id ON templates (external_id);
