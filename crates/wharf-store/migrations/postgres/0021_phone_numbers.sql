-- Phone numbers of the Zernio Business API. `number_pool` is the operator's inventory
-- (`wharf numbers add/list/remove`); `phone_numbers` holds each account's numbers, taken from
-- the pool or ordered from a provider (Telnyx), with their status and Meta verification.
-- Timestamps are integer milliseconds since the Unix epoch.
CREATE TABLE number_pool (
    -- E.164 with '+'.
    phone_number        TEXT COLLATE "C" PRIMARY KEY,
    -- ISO 3166-1 alpha-2, upper case.
    country             TEXT NOT NULL,
    area_code           TEXT,
    locality            TEXT,
    -- locality lower-cased by Wharf (Unicode-aware on both backends), for the search.
    locality_key        TEXT,
    -- The number's Graph id at Meta (its pre-verification), when the operator gave one.
    meta_preverified_id TEXT,
    -- The record (phone_numbers.id) holding the number; NULL while it is available.
    assigned_to         TEXT,
    created_at          BIGINT NOT NULL
);
CREATE INDEX number_pool_available ON number_pool (assigned_to, created_at);

CREATE TABLE phone_numbers (
    id                           TEXT COLLATE "C" PRIMARY KEY,
    account_id                   TEXT NOT NULL REFERENCES accounts(id),
    phone_number                 TEXT NOT NULL,
    country                      TEXT NOT NULL,
    -- pool or telnyx.
    source                       TEXT NOT NULL,
    -- The provider's order id (telnyx).
    provider_order_id            TEXT,
    -- provisioning, active, suspended, releasing, released.
    status                       TEXT NOT NULL,
    -- The caller's opaque label.
    profile_id                   TEXT,
    meta_preverified_id          TEXT,
    -- pending, code_requested, verified.
    meta_verification_status     TEXT,
    meta_verified_at             BIGINT,
    meta_verification_expires_at BIGINT,
    provisioned_at               BIGINT,
    released_at                  BIGINT,
    created_at                   BIGINT NOT NULL,
    updated_at                   BIGINT NOT NULL
);
CREATE INDEX phone_numbers_by_account ON phone_numbers (account_id, id);
-- A number is held by at most one record that is not released.
CREATE UNIQUE INDEX phone_numbers_live ON phone_numbers (phone_number) WHERE status <> 'released';
