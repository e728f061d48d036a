-- The generation of each session's contact list: moved on in the transaction of every
-- contact write, so cached searches (the store's search cache) know when they are stale,
-- whichever instance wrote.
CREATE TABLE contact_generations (
    session_id  TEXT PRIMARY KEY,
    generation  INTEGER NOT NULL
);
