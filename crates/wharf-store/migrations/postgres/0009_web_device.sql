-- The WhatsApp Web engine's linked devices (issue 12): whatsapp-rust's storage, one device per
-- session, every row keyed by the session. Secret material (private keys, ratchets, sender
-- keys, app-state keys, message secrets, message bodies) is sealed by the server's secret key
-- before it gets here; what stays clear is public or routing data.

-- The device itself: its serde form, sealed; pn and lid in clear to show the linked number.
CREATE TABLE web_devices (
    session_id  TEXT PRIMARY KEY REFERENCES sessions(id) ON DELETE CASCADE,
    pn          TEXT,
    lid         TEXT,
    device      BYTEA NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- Byte maps by (kind, key): identities, Signal sessions, sender keys, signed pre-keys,
-- app-state versions, base keys, device lists, group metadata (kinds in web_device.rs).
-- Keys compare bytewise ("C"), so an address prefix is a range of the primary key.
CREATE TABLE web_kv (
    session_id  TEXT NOT NULL,
    kind        BIGINT NOT NULL,
    k           TEXT COLLATE "C" NOT NULL,
    v           BYTEA NOT NULL,
    PRIMARY KEY (session_id, kind, k)
);

CREATE TABLE web_prekeys (
    session_id  TEXT NOT NULL,
    id          BIGINT NOT NULL,
    record      BYTEA NOT NULL,
    uploaded    BIGINT NOT NULL,
    PRIMARY KEY (session_id, id)
);

-- App-state sync keys; seq orders them by when they were set (the latest is the last set).
CREATE TABLE web_sync_keys (
    session_id  TEXT NOT NULL,
    key_id      BYTEA NOT NULL,
    v           BYTEA NOT NULL,
    seq         BIGINT NOT NULL,
    PRIMARY KEY (session_id, key_id)
);

CREATE TABLE web_mutation_macs (
    session_id  TEXT NOT NULL,
    name        TEXT NOT NULL,
    index_mac   BYTEA NOT NULL,
    version     BIGINT NOT NULL,
    value_mac   BYTEA NOT NULL,
    PRIMARY KEY (session_id, name, index_mac)
);

CREATE TABLE web_sender_key_devices (
    session_id  TEXT NOT NULL,
    group_jid   TEXT NOT NULL,
    device_jid  TEXT NOT NULL,
    has_key     BIGINT NOT NULL,
    PRIMARY KEY (session_id, group_jid, device_jid)
);
CREATE INDEX web_sender_key_devices_by_device ON web_sender_key_devices (session_id, device_jid);

CREATE TABLE web_lid_pn (
    session_id       TEXT NOT NULL,
    lid              TEXT NOT NULL,
    phone_number     TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    learning_source  TEXT NOT NULL,
    PRIMARY KEY (session_id, lid)
);
CREATE INDEX web_lid_pn_by_phone ON web_lid_pn (session_id, phone_number, updated_at);

CREATE TABLE web_tc_tokens (
    session_id        TEXT NOT NULL,
    jid               TEXT NOT NULL,
    token             BYTEA NOT NULL,
    token_timestamp   BIGINT NOT NULL,
    sender_timestamp  BIGINT,
    PRIMARY KEY (session_id, jid)
);

-- Timestamps of the three buffers below are Unix seconds, as the client's sweeps pass them.
CREATE TABLE web_sent_messages (
    session_id  TEXT NOT NULL,
    chat_jid    TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    payload     BYTEA NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (session_id, chat_jid, message_id)
);

CREATE TABLE web_pending_inbound (
    session_id   TEXT NOT NULL,
    chat         TEXT NOT NULL,
    sender       TEXT NOT NULL,
    id           TEXT NOT NULL,
    message      BYTEA NOT NULL,
    inserted_at  BIGINT NOT NULL,
    PRIMARY KEY (session_id, chat, sender, id)
);

CREATE TABLE web_msg_secrets (
    session_id  TEXT NOT NULL,
    chat        TEXT NOT NULL,
    sender      TEXT NOT NULL,
    msg_id      TEXT NOT NULL,
    secret      BYTEA NOT NULL,
    expires_at  BIGINT NOT NULL,
    message_ts  BIGINT NOT NULL,
    PRIMARY KEY (session_id, chat, sender, msg_id)
);
