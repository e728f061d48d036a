-- A counter bumped by every change that can withdraw a credential or a session from a send:
-- a key revoked, deleted or moved; a session's status, number, engine or account changed, or
-- the session deleted. The send path caches keys and sessions in memory with the counter's
-- value when it read them, and commits a send only while the counter still has that value
-- (docs/architecture.md, "Cached credentials on the send path"). Triggers keep it exact
-- whichever process or tool makes the change.
CREATE TABLE auth_epoch (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n  INTEGER NOT NULL
);
INSERT INTO auth_epoch (id, n) VALUES (1, 0);

CREATE TRIGGER api_keys_bump_auth_epoch_on_update AFTER UPDATE ON api_keys
WHEN OLD.revoked_at IS NOT NEW.revoked_at OR OLD.account_id IS NOT NEW.account_id
  OR OLD.session_id IS NOT NEW.session_id OR OLD.kind IS NOT NEW.kind OR OLD.hash IS NOT NEW.hash
BEGIN
    UPDATE auth_epoch SET n = n + 1 WHERE id = 1;
END;

CREATE TRIGGER api_keys_bump_auth_epoch_on_delete AFTER DELETE ON api_keys
BEGIN
    UPDATE auth_epoch SET n = n + 1 WHERE id = 1;
END;

CREATE TRIGGER sessions_bump_auth_epoch_on_update AFTER UPDATE ON sessions
WHEN OLD.status IS NOT NEW.status OR OLD.phone_number IS NOT NEW.phone_number
  OR OLD.engine IS NOT NEW.engine OR OLD.account_id IS NOT NEW.account_id
BEGIN
    UPDATE auth_epoch SET n = n + 1 WHERE id = 1;
END;

CREATE TRIGGER sessions_bump_auth_epoch_on_delete AFTER DELETE ON sessions
BEGIN
    UPDATE auth_epoch SET n = n + 1 WHERE id = 1;
END;
