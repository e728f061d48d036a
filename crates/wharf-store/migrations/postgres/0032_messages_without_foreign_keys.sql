-- Messages no longer check their account and session by foreign key on PostgreSQL.
--
-- Each check is a query of its own per inserted row that also locks the account's and the
-- session's row (`FOR KEY SHARE`); two transactions writing to one session at once (a group
-- of sends and the dispatcher's events, say) share that lock through a multixact, which every
-- later check then has to read. In a group commit of sends that was about a fifth of the send
-- rate (docs/benchmarks.md, issue 19). The checks guarded nothing the store does not already
-- guarantee: accounts and sessions are never deleted, and a message is only ever written for
-- a session the same request read (or held, checked by the auth epoch, in its cache).
-- SQLite keeps its foreign keys: there a check is one lookup in a cached page, with no lock.
ALTER TABLE messages DROP CONSTRAINT IF EXISTS messages_account_id_fkey;
ALTER TABLE messages DROP CONSTRAINT IF EXISTS messages_session_id_fkey;
