-- Smaller label rows and name index for a contacts import to write (issue 14).
--
-- A label row was (session, kind, label, sort name, contact id): about 95 bytes, 60 of them
-- the session's and the contact's text ids, repeated in every row. An import of 1,000
-- contacts with a tag and a group each lands 2,000 of them at random places (they are in
-- name order within their label), and measured without the server (1,000 a transaction,
-- 400,000 contacts) the label rows were the largest part of an import's work.
--
-- Now each (session, kind, label) is numbered once in `contact_label_keys`, and a label row
-- is (label number, sort name, contact seq): about 30 bytes. The contact's `seq` (its
-- rowid) is the list's second sort key instead of its id, so the name index carries the
-- 8-byte-or-less seq in place of the 29-byte id too, and a page's rows are read by rowid.
-- Label rows have no foreign key: the store writes and removes them in the transaction that
-- writes or removes their contact, found by `contact_labels_by_contact`.
CREATE TABLE contact_label_keys (
    id          INTEGER PRIMARY KEY,
    session_id  TEXT NOT NULL,
    -- 'tag' or 'group'.
    kind        TEXT NOT NULL,
    label       TEXT NOT NULL,
    UNIQUE (session_id, kind, label)
);
INSERT INTO contact_label_keys (session_id, kind, label)
    SELECT DISTINCT session_id, kind, label FROM contact_labels ORDER BY 1, 2, 3;

CREATE TABLE contact_labels_by_key (
    label_id    INTEGER NOT NULL,
    sort_name   TEXT NOT NULL,
    -- The contact's `seq`.
    seq         INTEGER NOT NULL,
    -- The contact's, so a label's list filtered by opt-in reads no contact row.
    is_opted_in INTEGER NOT NULL,
    PRIMARY KEY (label_id, sort_name, seq)
) WITHOUT ROWID;
INSERT INTO contact_labels_by_key (label_id, sort_name, seq, is_opted_in)
    SELECT k.id, l.sort_name, c.seq, l.is_opted_in
    FROM contact_labels l
    JOIN contact_label_keys k ON k.session_id = l.session_id AND k.kind = l.kind AND k.label = l.label
    JOIN contacts c ON c.id = l.contact_id;
DROP TABLE contact_labels;
ALTER TABLE contact_labels_by_key RENAME TO contact_labels;
CREATE INDEX contact_labels_by_contact ON contact_labels (seq);
CREATE INDEX contact_labels_opted_out ON contact_labels (label_id, is_opted_in, sort_name, seq)
    WHERE is_opted_in = 0;

DROP INDEX contacts_by_name;
CREATE INDEX contacts_by_name ON contacts (session_id, sort_name, seq, is_opted_in);
DROP INDEX contacts_opted_out;
CREATE INDEX contacts_opted_out ON contacts (session_id, is_opted_in, sort_name, seq)
    WHERE is_opted_in = 0;
