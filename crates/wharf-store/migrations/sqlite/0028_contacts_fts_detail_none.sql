-- The contact search index keeps only which contacts hold each trigram. Search asks for every
-- trigram of the term (an AND of single trigrams) and checks the candidates against the term
-- with GLOB, so the positions (`detail=full`) and column sizes were written and never read.
-- Without them an import writes less of the index (measured in docs/benchmarks.md).
DROP TRIGGER contacts_fts_insert;
DROP TRIGGER contacts_fts_delete;
DROP TRIGGER contacts_fts_update;
DROP TABLE contacts_fts;
CREATE VIRTUAL TABLE contacts_fts USING fts5(
    search, content = 'contacts', content_rowid = 'seq', tokenize = 'trigram',
    detail = none, columnsize = 0
);
INSERT INTO contacts_fts (contacts_fts) VALUES ('rebuild');
CREATE TRIGGER contacts_fts_insert AFTER INSERT ON contacts BEGIN
    INSERT INTO contacts_fts (rowid, search) VALUES (new.seq, new.search);
END;
CREATE TRIGGER contacts_fts_delete AFTER DELETE ON contacts BEGIN
    INSERT INTO contacts_fts (contacts_fts, rowid, search) VALUES ('delete', old.seq, old.search);
END;
CREATE TRIGGER contacts_fts_update AFTER UPDATE OF search ON contacts BEGIN
    INSERT INTO contacts_fts (contacts_fts, rowid, search) VALUES ('delete', old.seq, old.search);
    INSERT INTO contacts_fts (rowid, search) VALUES (new.seq, new.search);
END;
