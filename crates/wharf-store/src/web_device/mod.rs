//! The WhatsApp Web engine's linked devices: whatsapp-rust's storage traits (`Backend`) on
//! Wharf's own database, so a linked device lives beside everything else (one backup) and
//! another instance can take it over later.
//!
//! One [`WebDeviceStore`] per session: every row is keyed by the session id, and
//! [`Store::delete_web_device`] removes them all. Secret material (the device's keys, Signal
//! sessions, pre-keys, sender keys, app-state sync keys, message secrets, message bodies,
//! privacy tokens) is
//! sealed by the server's [`Sealer`] before it is written, bound to the session, the kind of
//! value and its key, so sealed values cannot be moved between rows. Public or routing data
//! (identity public keys, device lists, LID maps, MACs, app-state hashes) stays clear.
//!
//! Choices where the crate's own backends differ: the latest app-state sync key is the one
//! set last (as the in-memory backend); pre-keys keep their `uploaded` flag (as SQLite).
//! Timestamps of the sent-message and pending-inbound buffers are Unix seconds, as the
//! client's sweeps pass their cutoffs.

use std::{collections::HashMap, sync::Arc};

use async_trait::async_trait;
use sqlx::{AssertSqlSafe, Row};
use wharf_core::{Sealer, SessionId, time::Clock};
use whatsapp_rust::{
    bytes::Bytes,
    wacore::{
        appstate::{hash::HashState, processor::AppStateMutationMAC},
        stats::StorageResourceReport,
        store::{
            Device,
            error::StoreError as WaError,
            traits::{
                AppStateSyncKey, AppSyncStore, DeviceListRecord, DeviceStore, LidPnMappingEntry,
                MsgSecretEntry, MsgSecretStore, PendingInboundKey, PendingInboundRow,
                ProtocolStore, SignalStore, TcTokenEntry,
            },
        },
    },
};

use crate::{Params, Result, Store};

mod app_sync;
mod device;
mod msg_secret;
mod protocol;
mod signal;

type WaResult<T> = std::result::Result<T, WaError>;

/// The tables of a device, for deletion.
const TABLES: &[&str] = &[
    "web_kv",
    "web_prekeys",
    "web_sync_keys",
    "web_mutation_macs",
    "web_sender_key_devices",
    "web_lid_pn",
    "web_tc_tokens",
    "web_sent_messages",
    "web_pending_inbound",
    "web_msg_secrets",
    "web_contacts",
    "web_devices",
];

/// Rows per generated multi-row statement.
const CHUNK: usize = 200;

/// What a `web_kv` row holds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// Public identity keys by Signal address (clear).
    Identity = 1,
    /// Signal session records by address (sealed).
    Session = 2,
    /// Sender-key records by sender-key name (sealed).
    SenderKey = 3,
    /// Signed pre-key records by id (sealed).
    SignedPreKey = 4,
    /// App-state collection versions (`HashState` as JSON) by name (clear).
    AppStateVersion = 5,
    /// Base keys by address and message id (clear).
    BaseKey = 6,
    /// Device lists (`DeviceListRecord` as JSON) by user (clear).
    DeviceList = 7,
    /// Group metadata blobs by group JID (clear).
    GroupMetadata = 8,
}

impl Kind {
    fn sealed(self) -> bool {
        matches!(self, Kind::Session | Kind::SenderKey | Kind::SignedPreKey)
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Identity => "identity",
            Kind::Session => "session",
            Kind::SenderKey => "sender_key",
            Kind::SignedPreKey => "signed_prekey",
            Kind::AppStateVersion => "app_state_version",
            Kind::BaseKey => "base_key",
            Kind::DeviceList => "device_list",
            Kind::GroupMetadata => "group_metadata",
        }
    }
}

impl Store {
    /// Removes every row of `session`'s linked WhatsApp Web device (on logout or deletion),
    /// in one transaction. Nothing to remove is not an error.
    pub async fn delete_web_device(&self, session: SessionId) -> Result<()> {
        let mut tx = self.write.begin().await?;
        for table in TABLES {
            sqlx::query(AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE session_id = $1"
            )))
            .bind(session)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Whether `session` has a stored WhatsApp Web device (linked or waiting to be).
    pub async fn web_device_exists(&self, session: SessionId) -> Result<bool> {
        Ok(
            sqlx::query("SELECT 1 FROM web_devices WHERE session_id = $1")
                .bind(session)
                .fetch_optional(&self.read)
                .await?
                .is_some(),
        )
    }
}

/// whatsapp-rust's storage for one session's device, on Wharf's database. Build one per
/// session and hand it to `PersistenceManager::new(Arc::new(store))`.
#[derive(Clone)]
pub struct WebDeviceStore {
    store: Store,
    session: SessionId,
    sealer: Arc<dyn Sealer>,
    clock: Clock,
}

impl std::fmt::Debug for WebDeviceStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebDeviceStore")
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

fn db(e: sqlx::Error) -> WaError {
    WaError::Database(Box::new(e))
}

fn json_err(e: serde_json::Error) -> WaError {
    WaError::Serialization(Box::new(e))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn u32_of(n: i64, what: &str) -> WaResult<u32> {
    u32::try_from(n).map_err(|_| WaError::Validation(format!("stored {what} {n} is not a u32")))
}

/// Keeps the last of each key, in first-seen order (a multi-row upsert may not name a row
/// twice on PostgreSQL).
fn last_wins<K: std::hash::Hash + Eq + Clone, V>(
    items: impl IntoIterator<Item = (K, V)>,
) -> Vec<(K, V)> {
    let mut at: HashMap<K, usize> = HashMap::new();
    let mut out: Vec<(K, V)> = Vec::new();
    for (k, v) in items {
        match at.get(&k) {
            Some(&i) => out[i].1 = v,
            None => {
                at.insert(k.clone(), out.len());
                out.push((k, v));
            }
        }
    }
    out
}

impl WebDeviceStore {
    /// The device store of `session`, sealing with `sealer` (the server's secret key).
    pub fn new(store: Store, session: SessionId, sealer: Arc<dyn Sealer>) -> Self {
        Self {
            store,
            session,
            sealer,
            clock: Clock::default(),
        }
    }

    /// Reads time from `clock` (tests move it) instead of the system clock.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The session this device belongs to.
    pub fn session(&self) -> SessionId {
        self.session
    }

    fn now_secs(&self) -> i64 {
        self.clock.now_millis().div_euclid(1000)
    }

    fn context(&self, what: &str, key: &str) -> String {
        format!("web/{}/{what}/{key}", self.session)
    }

    fn seal(&self, what: &str, key: &str, plain: &[u8]) -> Vec<u8> {
        self.sealer.seal(&self.context(what, key), plain)
    }

    fn open(&self, what: &str, key: &str, sealed: &[u8]) -> WaResult<Vec<u8>> {
        self.sealer
            .open(&self.context(what, key), sealed)
            .map_err(|e| WaError::InvalidConfig(format!("{what} {key}: {e}")))
    }

    fn kv_value(&self, kind: Kind, key: &str, value: &[u8]) -> Vec<u8> {
        if kind.sealed() {
            self.seal(kind.name(), key, value)
        } else {
            value.to_vec()
        }
    }

    async fn kv_get(&self, kind: Kind, key: &str) -> WaResult<Option<Vec<u8>>> {
        let row =
            sqlx::query("SELECT v FROM web_kv WHERE session_id = $1 AND kind = $2 AND k = $3")
                .bind(self.session)
                .bind(kind as i64)
                .bind(key)
                .fetch_optional(&self.store.read)
                .await
                .map_err(db)?;
        let Some(row) = row else { return Ok(None) };
        let v: Vec<u8> = row.try_get(0).map_err(db)?;
        if kind.sealed() {
            self.open(kind.name(), key, &v).map(Some)
        } else {
            Ok(Some(v))
        }
    }

    async fn kv_put(&self, kind: Kind, key: &str, value: &[u8]) -> WaResult<()> {
        sqlx::query(
            "INSERT INTO web_kv (session_id, kind, k, v) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (session_id, kind, k) DO UPDATE SET v = excluded.v",
        )
        .bind(self.session)
        .bind(kind as i64)
        .bind(key)
        .bind(self.kv_value(kind, key, value))
        .execute(&self.store.write)
        .await
        .map_err(db)?;
        Ok(())
    }

    /// Upserts many rows of one kind in one transaction; the last of a repeated key wins.
    async fn kv_put_batch(&self, kind: Kind, items: Vec<(&str, &[u8])>) -> WaResult<()> {
        if items.is_empty() {
            return Ok(());
        }
        let items = last_wins(items);
        let mut tx = self.store.write.begin().await.map_err(db)?;
        for chunk in items.chunks(CHUNK) {
            let mut p = Params::new(self.store.backend);
            let sql = format!(
                "INSERT INTO web_kv (session_id, kind, k, v) VALUES {} \
                 ON CONFLICT (session_id, kind, k) DO UPDATE SET v = excluded.v",
                p.rows(chunk.len(), 4)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (key, value) in chunk {
                q = q
                    .bind(self.session)
                    .bind(kind as i64)
                    .bind(*key)
                    .bind(self.kv_value(kind, key, value));
            }
            q.execute(&mut *tx).await.map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    async fn kv_delete(&self, kind: Kind, key: &str) -> WaResult<()> {
        sqlx::query("DELETE FROM web_kv WHERE session_id = $1 AND kind = $2 AND k = $3")
            .bind(self.session)
            .bind(kind as i64)
            .bind(key)
            .execute(&self.store.write)
            .await
            .map_err(db)?;
        Ok(())
    }

    fn base_key_key(address: &str, message_id: &str) -> String {
        format!("{address}\u{1f}{message_id}")
    }

    fn sync_key_name(key_id: &[u8]) -> String {
        hex(key_id)
    }

    fn msg_secret_key(chat: &str, sender: &str, msg_id: &str) -> String {
        format!("{chat}\u{1f}{sender}\u{1f}{msg_id}")
    }

    fn pending_key(chat: &str, sender: &str, id: &str) -> String {
        format!("{chat}\u{1f}{sender}\u{1f}{id}")
    }

    fn sent_key(chat: &str, id: &str) -> String {
        format!("{chat}\u{1f}{id}")
    }

    fn prekey_values(&self, keys: &[(u32, &[u8])]) -> Vec<Vec<u8>> {
        keys.iter()
            .map(|(id, record)| self.seal("prekey", &id.to_string(), record))
            .collect()
    }

    async fn upsert_pending(
        &self,
        conn: &mut sqlx::AnyConnection,
        row: &PendingInboundRow<'_>,
        now: i64,
    ) -> WaResult<()> {
        let sealed = self.seal(
            "pending_inbound",
            &Self::pending_key(row.chat, row.sender, row.id),
            row.message,
        );
        sqlx::query(
            "INSERT INTO web_pending_inbound (session_id, chat, sender, id, message, inserted_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (session_id, chat, sender, id) \
             DO UPDATE SET message = excluded.message, inserted_at = excluded.inserted_at",
        )
        .bind(self.session)
        .bind(row.chat)
        .bind(row.sender)
        .bind(row.id)
        .bind(sealed)
        .bind(now)
        .execute(conn)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn upsert_msg_secret(
        &self,
        conn: &mut sqlx::AnyConnection,
        entry: &MsgSecretEntry,
    ) -> WaResult<()> {
        let sealed = self.seal(
            "msg_secret",
            &Self::msg_secret_key(&entry.chat, &entry.sender, &entry.msg_id),
            &entry.secret,
        );
        // The merge rules of the trait (`merge_msg_secret_expiry`, `…_message_ts`) in SQL,
        // so a concurrent writer cannot shorten a window or lose a known time.
        sqlx::query(
            "INSERT INTO web_msg_secrets (session_id, chat, sender, msg_id, secret, expires_at, message_ts) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (session_id, chat, sender, msg_id) \
             DO UPDATE SET secret = excluded.secret, \
               expires_at = CASE WHEN web_msg_secrets.expires_at = 0 OR excluded.expires_at = 0 THEN 0 \
                 WHEN excluded.expires_at > web_msg_secrets.expires_at THEN excluded.expires_at \
                 ELSE web_msg_secrets.expires_at END, \
               message_ts = CASE WHEN excluded.message_ts > web_msg_secrets.message_ts \
                 THEN excluded.message_ts ELSE web_msg_secrets.message_ts END",
        )
        .bind(self.session)
        .bind(&*entry.chat)
        .bind(&*entry.sender)
        .bind(&*entry.msg_id)
        .bind(sealed)
        .bind(entry.expires_at)
        .bind(entry.message_ts)
        .execute(conn)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn upsert_lid(
        &self,
        conn: &mut sqlx::AnyConnection,
        e: &LidPnMappingEntry,
    ) -> WaResult<()> {
        sqlx::query(
            "INSERT INTO web_lid_pn (session_id, lid, phone_number, created_at, updated_at, learning_source) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (session_id, lid) DO UPDATE SET \
             phone_number = excluded.phone_number, updated_at = excluded.updated_at, \
             learning_source = excluded.learning_source",
        )
        .bind(self.session)
        .bind(&e.lid)
        .bind(&e.phone_number)
        .bind(e.created_at)
        .bind(e.updated_at)
        .bind(&e.learning_source)
        .execute(conn)
        .await
        .map_err(db)?;
        Ok(())
    }
}

fn lid_entry(row: &sqlx::any::AnyRow) -> WaResult<LidPnMappingEntry> {
    Ok(LidPnMappingEntry {
        lid: row.try_get("lid").map_err(db)?,
        phone_number: row.try_get("phone_number").map_err(db)?,
        created_at: row.try_get("created_at").map_err(db)?,
        updated_at: row.try_get("updated_at").map_err(db)?,
        learning_source: row.try_get("learning_source").map_err(db)?,
    })
}

const LID_COLUMNS: &str = "lid, phone_number, created_at, updated_at, learning_source";
