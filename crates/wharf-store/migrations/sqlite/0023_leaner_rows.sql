-- Leaner rows (issue 19). The event id's uniqueness was kept by an index that no query
-- reads (ids are generated unique; events are found by account and cursor, or by message), and
-- the rows were a rowid table plus a second copy of each key in the primary key's index. The
-- log is now one tree ordered by (account, cursor) and the id is a plain column.
CREATE TABLE events_by_cursor (
    account_id  TEXT NOT NULL REFERENCES accounts(id),
    seq         INTEGER NOT NULL,
    id          TEXT NOT NULL,
    session_id  TEXT,
    type        TEXT NOT NULL,
    payload     TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    message_id  TEXT,
    PRIMARY KEY (account_id, seq)
) WITHOUT ROWID;
INSERT INTO events_by_cursor (account_id, seq, id, session_id, type, payload, created_at, message_id)
    SELECT account_id, seq, id, session_id, type, payload, created_at, message_id FROM events;
DROP TABLE events;
ALTER TABLE events_by_cursor RENAME TO events;
CREATE INDEX events_by_message ON events (message_id) WHERE message_id IS NOT NULL;

-- The senders of inbound messages (the contact list's) are read from inbound messages only:
-- outgoing ones, nearly all of a gateway's, no longer get an entry.
DROP INDEX messages_by_sender;
CREATE INDEX messages_by_sender ON messages (session_id, sender_jid)
    WHERE direction = 'in' AND sender_jid IS NOT NULL;
