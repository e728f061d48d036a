-- Per-account API rate limits shared by every instance on one database (GCRA). `tat_ns` is
-- the account's theoretical arrival time in nanoseconds: the allowance is full when it is in
-- the past. Instances take tokens in small chunks (`Store::take_allowance`), so the limit
-- holds across instances while most requests never touch this table. `granted` is the size
-- of the last chunk, kept only so the taking statement can return it.
CREATE TABLE rate_allowances (
    account_id  TEXT PRIMARY KEY,
    tat_ns      BIGINT NOT NULL,
    granted     BIGINT NOT NULL
);
