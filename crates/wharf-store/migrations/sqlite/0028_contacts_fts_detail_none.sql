-- The contact search index keeps only which contacts hold each trigram. Search asks for every
-- trigram of the term (an AND of single trigrams) and checks the candidates against the term
-- with GLOB, so the positions (`detail=full`) and column sizes were written and never read.
-- Without them an import writes less of the index (measured in docs/benchmarks.md). The
-- triggers of 0012 keep it in step under the same name.
DROP TABLE contacts_fts;
CREATE VIRTUAL TABLE contacts_fts USING fts5(
    search, content = 'contacts', content_rowid = 'seq', tokenize = 'trigram',
    detail = none, columnsize = 0
);
INSERT INTO contacts_fts (contacts_fts) VALUES ('rebuild');
