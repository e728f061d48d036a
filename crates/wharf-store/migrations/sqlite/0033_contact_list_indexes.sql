-- Fewer indexes for a contacts import to write (issue 14). Each contact landed at a random
-- place in four indexes in name order (the name index, the opt-in index, and the label
-- table's two), so an import of 1,000 dirtied about a leaf page per contact in each, and the
-- opt-in indexes cost the import about as much as the search index (docs/benchmarks.md).
--
-- Contacts are opted in unless told otherwise, so the opted-out ones are few: they alone
-- keep an index of their own (`contacts_opted_out`, `contact_labels_opted_out`), which
-- serves `optedIn=false`. `optedIn=true` reads the same range as the list without a filter
-- and checks each entry: the name index ends with the contact's opt-in, and the label table
-- is its primary key's tree alone (`WITHOUT ROWID`) with the opt-in in its rows, so the check
-- reads nothing more; it skips only the opted-out entries. `contacts_by_account` was read by
-- no query (contacts are found by id, then checked against the account).
DROP INDEX contacts_by_opt_in;
DROP INDEX contacts_by_account;
DROP INDEX contacts_by_name;
CREATE INDEX contacts_by_name ON contacts (session_id, sort_name, id, is_opted_in);
-- (The opt-in among its columns, though always 0: without it SQLite's planner, which keeps
-- no statistics here, takes the name index for `optedIn=false` too.)
CREATE INDEX contacts_opted_out ON contacts (session_id, is_opted_in, sort_name, id)
    WHERE is_opted_in = 0;

CREATE TABLE contact_labels_by_key (
    session_id  TEXT NOT NULL,
    -- 'tag' or 'group'.
    kind        TEXT NOT NULL,
    label       TEXT NOT NULL,
    sort_name   TEXT NOT NULL,
    -- The contact's, so a label's list filtered by opt-in reads no contact row.
    is_opted_in INTEGER NOT NULL,
    contact_id  TEXT NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    PRIMARY KEY (session_id, kind, label, sort_name, contact_id)
) WITHOUT ROWID;
INSERT INTO contact_labels_by_key (session_id, kind, label, sort_name, is_opted_in, contact_id)
    SELECT session_id, kind, label, sort_name, is_opted_in, contact_id FROM contact_labels;
DROP TABLE contact_labels;
ALTER TABLE contact_labels_by_key RENAME TO contact_labels;
CREATE INDEX contact_labels_by_contact ON contact_labels (contact_id);
CREATE INDEX contact_labels_opted_out
    ON contact_labels (session_id, kind, label, is_opted_in, sort_name, contact_id)
    WHERE is_opted_in = 0;
