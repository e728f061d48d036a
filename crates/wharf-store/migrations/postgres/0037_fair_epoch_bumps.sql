-- A change of the auth epoch takes the epoch's table lock before its row. PostgreSQL gives a
-- row lock for share to a transaction that asks for it while an update of the row waits, so
-- sends that overlap (each holds the epoch's row for share until it commits: the group
-- commits of several instances, a send with an idempotency key beside a group) could keep a
-- revocation or a session's change waiting for as long as they kept coming. The table lock
-- queues: every send that asks after the change (its `FOR SHARE` takes the table's ROW SHARE
-- lock, which EXCLUSIVE refuses) waits behind it and then reads the new epoch. Plain reads
-- of the epoch (ACCESS SHARE) never wait. The change already held the row until its commit,
-- so sends wait no longer than before.
CREATE OR REPLACE FUNCTION bump_auth_epoch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    LOCK TABLE auth_epoch IN EXCLUSIVE MODE;
    UPDATE auth_epoch SET n = n + 1 WHERE id = 1;
    RETURN NULL;
END;
$$;
