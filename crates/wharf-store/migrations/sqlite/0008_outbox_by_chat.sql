-- The dispatcher's queue rule (a waiting job holds back the later jobs of its chat) is part
-- of `ready_jobs`' query: for each candidate, the waiting jobs of its chat are looked up here.
CREATE INDEX outbox_by_chat ON outbox (session_id, chat_jid, available_at);
