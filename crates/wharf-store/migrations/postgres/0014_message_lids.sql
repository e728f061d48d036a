-- WhatsApp names some people by a linked identity (`…@lid`) instead of their phone number.
-- A message keeps the chat and sender by phone JID (`chat_jid`, `sender_jid`) whenever the
-- phone is known, and their linked identities here when WhatsApp gave them.
ALTER TABLE messages ADD COLUMN chat_lid TEXT;
ALTER TABLE messages ADD COLUMN sender_lid TEXT;
CREATE INDEX messages_by_chat_lid ON messages (session_id, chat_lid) WHERE chat_lid IS NOT NULL;
