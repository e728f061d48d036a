-- The dispatcher's hold-back (a waiting job holds back the later jobs of its chat) looks up a
-- chat's waiting jobs. Only jobs told to wait (deferred by pacing, retried, or due later
-- than they were created) can be waiting, and they are the only entries this index keeps:
-- a send is accepted with `available_at = created_at` and never enters it, and a deferral
-- sets `available_at` past `created_at`. The index of every job by chat and time it
-- replaces cost an entry per send, and on PostgreSQL a read walked the entries of every send
-- accepted after its `now` (visible in the index, invisible to its snapshot) for each due
-- job: under a burst to one chat a read lasted the whole burst.
DROP INDEX outbox_by_chat;
CREATE INDEX outbox_waiting ON outbox (session_id, chat_jid, available_at)
    WHERE available_at > created_at;
