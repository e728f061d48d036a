-- The contacts CRM of the Zernio Business API (one list per session, i.e. per Zernio
-- `accountId`), and the business profiles the emulator keeps.
-- Timestamps are integer milliseconds since the Unix epoch; booleans are 0/1.

CREATE TABLE contacts (
    -- The FTS index below refers to rows by rowid; an explicit INTEGER PRIMARY KEY keeps
    -- rowids stable across VACUUM.
    seq               INTEGER PRIMARY KEY,
    id                TEXT NOT NULL UNIQUE,
    account_id        TEXT NOT NULL REFERENCES accounts(id),
    session_id        TEXT NOT NULL REFERENCES sessions(id),
    -- E.164 with '+'.
    phone             TEXT NOT NULL,
    name              TEXT NOT NULL,
    -- Lowercased name: the list's order.
    sort_name         TEXT NOT NULL,
    email             TEXT,
    company           TEXT,
    -- JSON arrays of strings.
    tags              TEXT NOT NULL,
    group_names       TEXT NOT NULL,
    is_opted_in       INTEGER NOT NULL,
    opt_in_at         INTEGER,
    opt_out_at        INTEGER,
    is_blocked        INTEGER NOT NULL DEFAULT 0,
    -- A JSON object of strings.
    custom_fields     TEXT NOT NULL,
    notes             TEXT,
    -- Lowercased name, phone, email and company: what `search` looks in.
    search            TEXT NOT NULL,
    last_sent_at      INTEGER,
    last_received_at  INTEGER,
    sent_count        INTEGER NOT NULL DEFAULT 0,
    received_count    INTEGER NOT NULL DEFAULT 0,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);
CREATE UNIQUE INDEX contacts_by_phone ON contacts (session_id, phone);
CREATE INDEX contacts_by_name ON contacts (session_id, sort_name, id);
CREATE INDEX contacts_by_opt_in ON contacts (session_id, is_opted_in, sort_name, id);
CREATE INDEX contacts_by_account ON contacts (account_id, id);

-- One row per tag and per group of a contact, in the list's order, so a tag or group filter
-- reads its page from the index instead of sorting every match.
CREATE TABLE contact_labels (
    session_id  TEXT NOT NULL,
    -- 'tag' or 'group'.
    kind        TEXT NOT NULL,
    label       TEXT NOT NULL,
    sort_name   TEXT NOT NULL,
    -- The contact's, so a label with an opt-in filter is one index range too.
    is_opted_in INTEGER NOT NULL,
    contact_id  TEXT NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    PRIMARY KEY (session_id, kind, label, sort_name, contact_id)
);
CREATE INDEX contact_labels_by_contact ON contact_labels (contact_id);
CREATE INDEX contact_labels_by_opt_in ON contact_labels (session_id, kind, label, is_opted_in, sort_name, contact_id);

-- How many contacts of a session there are, in all (kind 'all', label '') and per tag and
-- group, opted in or not: the list's totals and the groups' counts without counting rows.
-- Kept in the transaction of every contact write.
CREATE TABLE contact_counts (
    session_id   TEXT NOT NULL,
    kind         TEXT NOT NULL,
    label        TEXT NOT NULL,
    is_opted_in  INTEGER NOT NULL,
    n            INTEGER NOT NULL,
    PRIMARY KEY (session_id, kind, label, is_opted_in)
);

-- Substring search: a trigram index over `contacts.search`.
CREATE VIRTUAL TABLE contacts_fts USING fts5(
    search, content = 'contacts', content_rowid = 'seq', tokenize = 'trigram'
);
CREATE TRIGGER contacts_fts_insert AFTER INSERT ON contacts BEGIN
    INSERT INTO contacts_fts (rowid, search) VALUES (new.seq, new.search);
END;
CREATE TRIGGER contacts_fts_delete AFTER DELETE ON contacts BEGIN
    INSERT INTO contacts_fts (contacts_fts, rowid, search) VALUES ('delete', old.seq, old.search);
END;
CREATE TRIGGER contacts_fts_update AFTER UPDATE OF search ON contacts BEGIN
    INSERT INTO contacts_fts (contacts_fts, rowid, search) VALUES ('delete', old.seq, old.search);
    INSERT INTO contacts_fts (rowid, search) VALUES (new.seq, new.search);
END;

-- The business profile of emulator sessions (cloud sessions keep theirs at Meta).
CREATE TABLE business_profiles (
    session_id  TEXT PRIMARY KEY REFERENCES sessions(id),
    account_id  TEXT NOT NULL REFERENCES accounts(id),
    -- A JSON object in Graph's field names.
    profile     TEXT NOT NULL,
    updated_at  INTEGER NOT NULL
);
