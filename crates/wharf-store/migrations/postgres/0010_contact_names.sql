-- Names a user saved for a session's contacts (`PUT /api/contacts`), merged at read time
-- with the address book WhatsApp syncs and the senders of inbound messages.
CREATE TABLE contact_names (
    account_id TEXT NOT NULL REFERENCES accounts(id),
    session_id TEXT NOT NULL REFERENCES sessions(id),
    jid        TEXT NOT NULL,
    name       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (session_id, jid)
);
-- The contact list's "senders of inbound messages".
CREATE INDEX messages_by_sender ON messages (session_id, direction, sender_jid);
