-- SQLite only: a send's job is its message (issue 19). A queued outgoing message is a send
-- for the dispatcher to make; the outbox keeps only actions on messages (edits, revokes, read
-- marks). Accepting a send wrote an outbox row (its table and three indexes) and sending it
-- deleted that row again: about a quarter of the WAL an accepted message wrote, and half of
-- the group commit's inserts. Now a send writes one entry of `messages_queued`, which SQLite
-- removes when the message leaves `queued`. (PostgreSQL keeps the outbox row: there the
-- index would keep the entries of sent messages until a vacuum of `messages`; see
-- `messages::sends_in_outbox`.)
--
-- `send_after`: a send told to wait (deferred by pacing, retried) is not made before this
-- time, and holds back the later sends of its chat meanwhile; NULL for every other message.
-- `send_attempts`: the attempts of the current send (a failed message queued again starts
-- over at 0), where `attempts` counts all of a message's.
ALTER TABLE messages ADD COLUMN send_after INTEGER;
ALTER TABLE messages ADD COLUMN send_attempts INTEGER NOT NULL DEFAULT 0;

UPDATE messages SET
    send_after = (SELECT o.available_at FROM outbox o WHERE o.message_id = messages.id
                  AND o.action = 'send' AND o.available_at > o.created_at),
    send_attempts = (SELECT o.attempts FROM outbox o WHERE o.message_id = messages.id
                     AND o.action = 'send')
WHERE id IN (SELECT message_id FROM outbox WHERE action = 'send');
DELETE FROM outbox WHERE action = 'send';

-- The dispatcher's queue: a session's queued messages in order.
CREATE INDEX messages_queued ON messages (session_id, id) WHERE status = 'queued';
-- A chat's sends told to wait, for the hold-back (as `outbox_waiting` is for actions).
CREATE INDEX messages_waiting ON messages (session_id, chat_jid, send_after)
    WHERE status = 'queued' AND send_after IS NOT NULL;
