-- The contacts CRM of the Zernio Business API (one list per session, i.e. per Zernio
-- `accountId`), and the business profiles the emulator keeps.
-- Timestamps are integer milliseconds since the Unix epoch; booleans are 0/1.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE contacts (
    id                TEXT COLLATE "C" PRIMARY KEY,
    account_id        TEXT NOT NULL REFERENCES accounts(id),
    session_id        TEXT COLLATE "C" NOT NULL REFERENCES sessions(id),
    -- E.164 with '+'.
    phone             TEXT COLLATE "C" NOT NULL,
    name              TEXT NOT NULL,
    -- Lowercased name: the list's order (byte order, as on SQLite).
    sort_name         TEXT COLLATE "C" NOT NULL,
    email             TEXT,
    company           TEXT,
    -- JSON arrays of strings.
    tags              TEXT NOT NULL,
    group_names       TEXT NOT NULL,
    is_opted_in       BIGINT NOT NULL,
    opt_in_at         BIGINT,
    opt_out_at        BIGINT,
    is_blocked        BIGINT NOT NULL DEFAULT 0,
    -- A JSON object of strings.
    custom_fields     TEXT NOT NULL,
    notes             TEXT,
    -- Lowercased name, phone, email and company: what `search` looks in.
    search            TEXT NOT NULL,
    last_sent_at      BIGINT,
    last_received_at  BIGINT,
    sent_count        BIGINT NOT NULL DEFAULT 0,
    received_count    BIGINT NOT NULL DEFAULT 0,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);
CREATE UNIQUE INDEX contacts_by_phone ON contacts (session_id, phone);
CREATE INDEX contacts_by_name ON contacts (session_id, sort_name, id);
CREATE INDEX contacts_by_opt_in ON contacts (session_id, is_opted_in, sort_name, id);
CREATE INDEX contacts_by_account ON contacts (account_id, id);
-- Substring search: a trigram index over `search`.
CREATE INDEX contacts_search ON contacts USING gin (search gin_trgm_ops);

-- One row per tag and per group of a contact, in the list's order, so a tag or group filter
-- reads its page from the index instead of sorting every match.
CREATE TABLE contact_labels (
    session_id  TEXT COLLATE "C" NOT NULL,
    -- 'tag' or 'group'.
    kind        TEXT COLLATE "C" NOT NULL,
    label       TEXT COLLATE "C" NOT NULL,
    sort_name   TEXT COLLATE "C" NOT NULL,
    -- The contact's, so a label with an opt-in filter is one index range too.
    is_opted_in BIGINT NOT NULL,
    contact_id  TEXT COLLATE "C" NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    PRIMARY KEY (session_id, kind, label, sort_name, contact_id)
);
CREATE INDEX contact_labels_by_contact ON contact_labels (contact_id);
CREATE INDEX contact_labels_by_opt_in ON contact_labels (session_id, kind, label, is_opted_in, sort_name, contact_id);

-- How many contacts of a session there are, in all (kind 'all', label '') and per tag and
-- group, opted in or not: the list's totals and the groups' counts without counting rows.
-- Kept in the transaction of every contact write.
CREATE TABLE contact_counts (
    session_id   TEXT COLLATE "C" NOT NULL,
    kind         TEXT COLLATE "C" NOT NULL,
    label        TEXT COLLATE "C" NOT NULL,
    is_opted_in  BIGINT NOT NULL,
    n            BIGINT NOT NULL,
    PRIMARY KEY (session_id, kind, label, is_opted_in)
);

-- The business profile of emulator sessions (cloud sessions keep theirs at Meta).
CREATE TABLE business_profiles (
    session_id  TEXT COLLATE "C" PRIMARY KEY REFERENCES sessions(id),
    account_id  TEXT NOT NULL REFERENCES accounts(id),
    -- A JSON object in Graph's field names.
    profile     TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);
