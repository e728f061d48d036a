-- Fewer indexes for a contacts import to write (issue 14). Each contact landed at a random
-- place in four B-trees in name order (the name index, the opt-in index, and the label
-- table's two); index inserts were 57 % of PostgreSQL's time in an import
-- (docs/benchmarks.md).
--
-- Contacts are opted in unless told otherwise, so the opted-out ones are few: they alone
-- keep an index of their own (`contacts_opted_out`, `contact_labels_opted_out`), which
-- serves `optedIn=false`. `optedIn=true` reads the same range as the list without a filter
-- and checks each entry (the name index and the labels' primary key include the opt-in, so
-- once the table is vacuumed the check reads no row); it skips only the opted-out entries.
-- `contacts_by_account` was read by no query (contacts are found by id, then checked
-- against the account).
DROP INDEX contacts_by_opt_in;
DROP INDEX contacts_by_account;
DROP INDEX contacts_by_name;
CREATE INDEX contacts_by_name ON contacts (session_id, sort_name, id) INCLUDE (is_opted_in);
-- (Without the opt-in among its columns: PostgreSQL drops the condition the index implies
-- from the index's own, so a column between the session and the name would keep a page
-- anchor's `(sort_name, id) > (…)` from positioning the scan, and each anchored page would
-- read the index from the session's start.)
CREATE INDEX contacts_opted_out ON contacts (session_id, sort_name, id) WHERE is_opted_in = 0;
DROP INDEX contact_labels_by_opt_in;
ALTER TABLE contact_labels DROP CONSTRAINT contact_labels_pkey,
    ADD CONSTRAINT contact_labels_pkey PRIMARY KEY (session_id, kind, label, sort_name, contact_id)
        INCLUDE (is_opted_in);
CREATE INDEX contact_labels_opted_out
    ON contact_labels (session_id, kind, label, sort_name, contact_id) WHERE is_opted_in = 0;
