-- The generation of each session's contact list: moved on in the transaction of every
-- contact write, so cached searches (the store's search cache) know when they are stale,
-- whichever instance wrote.
CREATE TABLE contact_generations (
    session_id  TEXT COLLATE "C" PRIMARY KEY,
    generation  BIGINT NOT NULL
);
