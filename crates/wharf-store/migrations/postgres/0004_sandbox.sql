-- Sandbox sessions: phones activated on the shared sandbox number, the agents (Kapso dialect)
-- they can be bound to, and which session is the sandbox number.

-- At most one row: the session that serves as the shared sandbox number.
CREATE TABLE sandbox_number (
    id          BIGINT PRIMARY KEY CHECK (id = 1),
    session_id  TEXT NOT NULL REFERENCES sessions(id),
    updated_at  BIGINT NOT NULL
);

CREATE TABLE sandbox_agents (
    id           TEXT COLLATE "C" PRIMARY KEY,
    account_id   TEXT NOT NULL REFERENCES accounts(id),
    name         TEXT NOT NULL,
    description  TEXT,
    webhook_url  TEXT,
    -- The webhook endpoint (agent-owned) that receives the agent's sandbox traffic.
    webhook_id   TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX sandbox_agents_by_account ON sandbox_agents (account_id, id);

-- Expired rows are ignored by every query and pruned on the next write.
CREATE TABLE sandbox_sessions (
    id               TEXT COLLATE "C" PRIMARY KEY,
    account_id       TEXT NOT NULL REFERENCES accounts(id),
    -- Which dialect created it: 'zernio' activates on any reply, 'kapso' on its code.
    dialect          TEXT NOT NULL,
    -- E.164 with '+'.
    phone            TEXT NOT NULL,
    status           TEXT NOT NULL,
    activation_code  TEXT NOT NULL,
    agent_id         TEXT,
    expires_at       BIGINT NOT NULL,
    activated_at     BIGINT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX sandbox_sessions_by_phone ON sandbox_sessions (phone, expires_at);
CREATE INDEX sandbox_sessions_by_account ON sandbox_sessions (account_id, created_at);

-- Set on endpoints owned by an agent: they receive only that agent's sandbox traffic and are
-- managed through the agent, not /v1/webhooks.
ALTER TABLE webhooks ADD COLUMN agent_id TEXT;
