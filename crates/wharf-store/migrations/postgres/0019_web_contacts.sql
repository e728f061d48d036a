-- The address book WhatsApp syncs to a linked web device (app-state contact actions, push
-- names), one row per person: keyed by the phone JID when WhatsApp named the number, else by
-- the LID. Deleted with the device (logout, session deletion).
CREATE TABLE web_contacts (
    session_id  TEXT NOT NULL,
    jid         TEXT NOT NULL,
    lid         TEXT,
    name        TEXT,
    push_name   TEXT,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (session_id, jid)
);
CREATE INDEX web_contacts_by_lid ON web_contacts (session_id, lid);
