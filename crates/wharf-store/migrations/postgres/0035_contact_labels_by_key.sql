-- Smaller label rows and name index for a contacts import to write (issue 14); as on
-- SQLite (see its 0035).
--
-- Each (session, kind, label) is numbered once in `contact_label_keys`, and a label row is
-- (label number, sort name, contact seq) instead of (session, kind, label, sort name,
-- contact id). Contacts get a `seq` (an identity, unique), the list's second sort key in
-- place of the id, so the name index and the label rows carry an 8-byte number instead of
-- the 29-byte id; a page's rows are read by `contacts_by_seq`.
ALTER TABLE contacts ADD COLUMN seq BIGINT GENERATED ALWAYS AS IDENTITY;
CREATE UNIQUE INDEX contacts_by_seq ON contacts (seq);

CREATE TABLE contact_label_keys (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id  TEXT COLLATE "C" NOT NULL,
    -- 'tag' or 'group'.
    kind        TEXT COLLATE "C" NOT NULL,
    label       TEXT COLLATE "C" NOT NULL,
    UNIQUE (session_id, kind, label)
);
INSERT INTO contact_label_keys (session_id, kind, label)
    SELECT DISTINCT session_id, kind, label FROM contact_labels ORDER BY 1, 2, 3;

CREATE TABLE contact_labels_by_key (
    label_id    BIGINT NOT NULL,
    sort_name   TEXT COLLATE "C" NOT NULL,
    -- The contact's `seq`.
    seq         BIGINT NOT NULL,
    -- The contact's, so a label's list filtered by opt-in reads no contact row.
    is_opted_in BIGINT NOT NULL
);
INSERT INTO contact_labels_by_key (label_id, sort_name, seq, is_opted_in)
    SELECT k.id, l.sort_name, c.seq, l.is_opted_in
    FROM contact_labels l
    JOIN contact_label_keys k ON k.session_id = l.session_id AND k.kind = l.kind AND k.label = l.label
    JOIN contacts c ON c.id = l.contact_id;
DROP TABLE contact_labels;
ALTER TABLE contact_labels_by_key RENAME TO contact_labels;
ALTER TABLE contact_labels ADD CONSTRAINT contact_labels_pkey
    PRIMARY KEY (label_id, sort_name, seq) INCLUDE (is_opted_in);
CREATE INDEX contact_labels_by_contact ON contact_labels (seq);
-- (Without the opt-in among its columns, as 0033 explains.)
CREATE INDEX contact_labels_opted_out ON contact_labels (label_id, sort_name, seq)
    WHERE is_opted_in = 0;

DROP INDEX contacts_by_name;
CREATE INDEX contacts_by_name ON contacts (session_id, sort_name, seq) INCLUDE (is_opted_in);
DROP INDEX contacts_opted_out;
CREATE INDEX contacts_opted_out ON contacts (session_id, sort_name, seq) WHERE is_opted_in = 0;
