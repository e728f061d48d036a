-- A message is one recipient's: the lookup of recipients by message id (the receipts of every
-- message, broadcast or not) goes through a unique index, so the planner knows each id finds
-- at most one row whatever its statistics say. Without statistics (a table just filled by a
-- large broadcast; autovacuum off or not yet run) PostgreSQL estimated a batch of 200 ids to
-- match a third of the table and scanned all of it for every batch: 670 messages/s at a
-- million recipients.
DROP INDEX broadcast_recipients_by_message;
CREATE UNIQUE INDEX broadcast_recipients_by_message ON broadcast_recipients (message_id)
    WHERE message_id IS NOT NULL;
