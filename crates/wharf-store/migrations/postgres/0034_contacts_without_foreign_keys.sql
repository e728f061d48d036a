-- Contacts and their label rows no longer check their references by foreign key on
-- PostgreSQL (issue 14), as messages no longer do (0032).
--
-- Each check is a query of its own per inserted row, run from an after-trigger, and the
-- checks of a contact's account and session lock those rows (`FOR KEY SHARE`), which
-- concurrent imports into one session share through a multixact. An import of 1,000 contacts
-- ran about 4,000 of them (the account, the session, and the contact of each of its two or
-- more label rows). They guarded nothing the store does not already guarantee: accounts and
-- sessions are never deleted; contacts are written only for a session of the caller's account
-- that the same request read; a contact's label rows are written in the transaction that
-- writes the contact, and removed by the store itself (by contact) before the contact is
-- removed or its labels rewritten, so the cascade had nothing left to do.
-- SQLite keeps its foreign keys: there a check is one lookup in a cached page, with no lock.
ALTER TABLE contacts DROP CONSTRAINT IF EXISTS contacts_account_id_fkey;
ALTER TABLE contacts DROP CONSTRAINT IF EXISTS contacts_session_id_fkey;
ALTER TABLE contact_labels DROP CONSTRAINT IF EXISTS contact_labels_contact_id_fkey;
