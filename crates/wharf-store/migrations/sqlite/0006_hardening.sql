-- Webhook endpoints that only fail: when the current run of failures began (NULL after a
-- success), and when the endpoint was disabled for it (NULL unless disabled automatically).
ALTER TABLE webhooks ADD COLUMN failing_since INTEGER;
ALTER TABLE webhooks ADD COLUMN disabled_at INTEGER;

-- The Graph API address is operator configuration now (cloud_graph_base_url), never a
-- tenant's: addresses tenants stored are forgotten.
UPDATE cloud_sessions SET graph_base_url = NULL;
