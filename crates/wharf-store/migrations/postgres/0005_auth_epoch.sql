-- A counter bumped by every change that can withdraw a credential or a session from a send:
-- a key revoked, deleted or moved; a session's status, number, engine or account changed, or
-- the session deleted. The send path caches keys and sessions in memory with the counter's
-- value when it read them, and commits a send only while the counter still has that value
-- (docs/architecture.md, "Cached credentials on the send path"). Triggers keep it exact
-- whichever instance or tool makes the change.
CREATE TABLE auth_epoch (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n  BIGINT NOT NULL
);
INSERT INTO auth_epoch (id, n) VALUES (1, 0);

CREATE FUNCTION bump_auth_epoch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE auth_epoch SET n = n + 1 WHERE id = 1;
    RETURN NULL;
END;
$$;

CREATE TRIGGER api_keys_bump_auth_epoch_on_update AFTER UPDATE ON api_keys
FOR EACH ROW WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at
  OR OLD.account_id IS DISTINCT FROM NEW.account_id OR OLD.session_id IS DISTINCT FROM NEW.session_id
  OR OLD.kind IS DISTINCT FROM NEW.kind OR OLD.hash IS DISTINCT FROM NEW.hash)
EXECUTE FUNCTION bump_auth_epoch();

CREATE TRIGGER api_keys_bump_auth_epoch_on_delete AFTER DELETE ON api_keys
FOR EACH STATEMENT EXECUTE FUNCTION bump_auth_epoch();

CREATE TRIGGER sessions_bump_auth_epoch_on_update AFTER UPDATE ON sessions
FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status
  OR OLD.phone_number IS DISTINCT FROM NEW.phone_number OR OLD.engine IS DISTINCT FROM NEW.engine
  OR OLD.account_id IS DISTINCT FROM NEW.account_id)
EXECUTE FUNCTION bump_auth_epoch();

CREATE TRIGGER sessions_bump_auth_epoch_on_delete AFTER DELETE ON sessions
FOR EACH STATEMENT EXECUTE FUNCTION bump_auth_epoch();
