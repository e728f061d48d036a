-- A broadcast's message names its recipient (`broadcast_id`, `broadcast_seq`), so the
-- recipients need no index on their message or status: the events of a message find its
-- recipient through the message's primary key, then the recipient's. A recipient's row is
-- then written without touching any index after it is added (the batch writes its message id,
-- the dispatch outcomes and receipts its status): on PostgreSQL each of those writes becomes
-- a HOT update, in the room the fill factor leaves on the recipient's page, instead of a new
-- entry in each of four indexes. Listing recipients by status reads the broadcast's
-- recipients in order and filters them.
ALTER TABLE messages ADD COLUMN broadcast_id TEXT COLLATE "C";
ALTER TABLE messages ADD COLUMN broadcast_seq BIGINT;
UPDATE messages SET broadcast_id = r.broadcast_id, broadcast_seq = r.seq
    FROM broadcast_recipients r WHERE r.message_id = messages.id;
DROP INDEX broadcast_recipients_by_message;
DROP INDEX broadcast_recipients_by_status;
ALTER TABLE broadcast_recipients SET (fillfactor = 70);
-- Outgoing messages have no WhatsApp id until they are sent: they need no entry in the index
-- of WhatsApp ids until then.
DROP INDEX messages_by_provider_id;
CREATE UNIQUE INDEX messages_by_provider_id ON messages (session_id, provider_msg_id)
    WHERE provider_msg_id IS NOT NULL;
