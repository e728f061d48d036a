-- Leaner rows (issue 19): the event id's uniqueness was kept by an index that no query
-- reads (ids are generated unique; events are found by account and cursor, or by message).
ALTER TABLE events DROP CONSTRAINT IF EXISTS events_id_key;

-- The senders of inbound messages (the contact list's) are read from inbound messages only:
-- outgoing ones, nearly all of a gateway's, no longer get an entry.
DROP INDEX messages_by_sender;
CREATE INDEX messages_by_sender ON messages (session_id, sender_jid)
    WHERE direction = 'in' AND sender_jid IS NOT NULL;
