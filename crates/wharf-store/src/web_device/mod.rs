//! The WhatsApp Web engine's linked devices: whatsapp-rust's storage traits (`Backend`) on
//! Wharf's own database, so a linked device lives beside everything else (one backup) and
//! another instance can take it over later.
//!
//! One [`WebDeviceStore`] per session: every row is keyed by the session id, and
//! [`Store::delete_web_device`] removes them all. Secret material (the device's keys, Signal
//! sessions, pre-keys, sender keys, app-state sync keys, message secrets, message bodies) is
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

#[async_trait]
impl SignalStore for WebDeviceStore {
    async fn put_identity(&self, address: &str, key: [u8; 32]) -> WaResult<()> {
        self.kv_put(Kind::Identity, address, &key).await
    }

    async fn put_identities_batch(&self, identities: &[(Arc<str>, [u8; 32])]) -> WaResult<()> {
        self.kv_put_batch(
            Kind::Identity,
            identities.iter().map(|(a, k)| (&**a, &k[..])).collect(),
        )
        .await
    }

    async fn load_identity(&self, address: &str) -> WaResult<Option<[u8; 32]>> {
        match self.kv_get(Kind::Identity, address).await? {
            None => Ok(None),
            Some(v) => <[u8; 32]>::try_from(v.as_slice()).map(Some).map_err(|_| {
                WaError::Validation(format!("identity of {address} is {} bytes", v.len()))
            }),
        }
    }

    async fn delete_identity(&self, address: &str) -> WaResult<()> {
        self.kv_delete(Kind::Identity, address).await
    }

    async fn get_session(&self, address: &str) -> WaResult<Option<Bytes>> {
        Ok(self.kv_get(Kind::Session, address).await?.map(Bytes::from))
    }

    async fn put_session(&self, address: &str, session: &[u8]) -> WaResult<()> {
        self.kv_put(Kind::Session, address, session).await
    }

    async fn put_sessions_batch(&self, sessions: &[(Arc<str>, Bytes)]) -> WaResult<()> {
        self.kv_put_batch(
            Kind::Session,
            sessions.iter().map(|(a, s)| (&**a, &s[..])).collect(),
        )
        .await
    }

    async fn delete_session(&self, address: &str) -> WaResult<()> {
        self.kv_delete(Kind::Session, address).await
    }

    async fn has_session(&self, address: &str) -> WaResult<bool> {
        Ok(
            sqlx::query("SELECT 1 FROM web_kv WHERE session_id = $1 AND kind = $2 AND k = $3")
                .bind(self.session)
                .bind(Kind::Session as i64)
                .bind(address)
                .fetch_optional(&self.store.read)
                .await
                .map_err(db)?
                .is_some(),
        )
    }

    /// Whether any Signal session or identity is stored for `user` (addresses `user@…` or
    /// `user:…`): two ranges of the primary key (keys compare bytewise).
    async fn has_signal_state_for_user(&self, user: &str) -> WaResult<bool> {
        Ok(sqlx::query(
            "SELECT 1 FROM web_kv WHERE session_id = $1 AND kind IN ($2, $3) AND \
             ((k >= $4 AND k < $5) OR (k >= $6 AND k < $7)) LIMIT 1",
        )
        .bind(self.session)
        .bind(Kind::Identity as i64)
        .bind(Kind::Session as i64)
        .bind(format!("{user}@"))
        .bind(format!("{user}A")) // '@' + 1
        .bind(format!("{user}:"))
        .bind(format!("{user};")) // ':' + 1
        .fetch_optional(&self.store.read)
        .await
        .map_err(db)?
        .is_some())
    }

    async fn store_prekey(&self, id: u32, record: &[u8], uploaded: bool) -> WaResult<()> {
        sqlx::query(
            "INSERT INTO web_prekeys (session_id, id, record, uploaded) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (session_id, id) DO UPDATE SET record = excluded.record, uploaded = excluded.uploaded",
        )
        .bind(self.session)
        .bind(i64::from(id))
        .bind(self.seal("prekey", &id.to_string(), record))
        .bind(i64::from(uploaded))
        .execute(&self.store.write)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn store_prekeys_batch(&self, keys: &[(u32, Bytes)], uploaded: bool) -> WaResult<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let keys = last_wins(keys.iter().map(|(id, r)| (*id, &r[..])));
        let values = self.prekey_values(&keys);
        let mut tx = self.store.write.begin().await.map_err(db)?;
        for (chunk, values) in keys.chunks(CHUNK).zip(values.chunks(CHUNK)) {
            let mut p = Params::new(self.store.backend);
            let sql = format!(
                "INSERT INTO web_prekeys (session_id, id, record, uploaded) VALUES {} \
                 ON CONFLICT (session_id, id) DO UPDATE SET record = excluded.record, uploaded = excluded.uploaded",
                p.rows(chunk.len(), 4)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for ((id, _), value) in chunk.iter().zip(values) {
                q = q
                    .bind(self.session)
                    .bind(i64::from(*id))
                    .bind(value.clone())
                    .bind(i64::from(uploaded));
            }
            q.execute(&mut *tx).await.map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    async fn load_prekey(&self, id: u32) -> WaResult<Option<Bytes>> {
        let row = sqlx::query("SELECT record FROM web_prekeys WHERE session_id = $1 AND id = $2")
            .bind(self.session)
            .bind(i64::from(id))
            .fetch_optional(&self.store.read)
            .await
            .map_err(db)?;
        let Some(row) = row else { return Ok(None) };
        let sealed: Vec<u8> = row.try_get(0).map_err(db)?;
        Ok(Some(Bytes::from(self.open(
            "prekey",
            &id.to_string(),
            &sealed,
        )?)))
    }

    async fn load_prekeys_batch(&self, ids: &[u32]) -> WaResult<Vec<(u32, Bytes)>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(CHUNK) {
            let mut p = Params::new(self.store.backend);
            let sql = format!(
                "SELECT id, record FROM web_prekeys WHERE session_id = {} AND id IN ({})",
                p.next(),
                p.list(chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql)).bind(self.session);
            for id in chunk {
                q = q.bind(i64::from(*id));
            }
            for row in q.fetch_all(&self.store.read).await.map_err(db)? {
                let id = u32_of(row.try_get(0).map_err(db)?, "pre-key id")?;
                let sealed: Vec<u8> = row.try_get(1).map_err(db)?;
                out.push((
                    id,
                    Bytes::from(self.open("prekey", &id.to_string(), &sealed)?),
                ));
            }
        }
        Ok(out)
    }

    /// Only flags keys that exist: never inserts or brings back a removed one.
    async fn mark_prekeys_uploaded(&self, ids: &[u32]) -> WaResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut tx = self.store.write.begin().await.map_err(db)?;
        for chunk in ids.chunks(CHUNK) {
            let mut p = Params::new(self.store.backend);
            let sql = format!(
                "UPDATE web_prekeys SET uploaded = 1 WHERE session_id = {} AND id IN ({})",
                p.next(),
                p.list(chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql)).bind(self.session);
            for id in chunk {
                q = q.bind(i64::from(*id));
            }
            q.execute(&mut *tx).await.map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    async fn remove_prekey(&self, id: u32) -> WaResult<()> {
        sqlx::query("DELETE FROM web_prekeys WHERE session_id = $1 AND id = $2")
            .bind(self.session)
            .bind(i64::from(id))
            .execute(&self.store.write)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn get_max_prekey_id(&self) -> WaResult<u32> {
        let row = sqlx::query("SELECT MAX(id) FROM web_prekeys WHERE session_id = $1")
            .bind(self.session)
            .fetch_one(&self.store.read)
            .await
            .map_err(db)?;
        let max: Option<i64> = row.try_get(0).map_err(db)?;
        u32_of(max.unwrap_or(0), "pre-key id")
    }

    async fn store_signed_prekey(&self, id: u32, record: &[u8]) -> WaResult<()> {
        self.kv_put(Kind::SignedPreKey, &id.to_string(), record)
            .await
    }

    async fn load_signed_prekey(&self, id: u32) -> WaResult<Option<Vec<u8>>> {
        self.kv_get(Kind::SignedPreKey, &id.to_string()).await
    }

    async fn load_all_signed_prekeys(&self) -> WaResult<Vec<(u32, Vec<u8>)>> {
        let rows = sqlx::query("SELECT k, v FROM web_kv WHERE session_id = $1 AND kind = $2")
            .bind(self.session)
            .bind(Kind::SignedPreKey as i64)
            .fetch_all(&self.store.read)
            .await
            .map_err(db)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let key: String = row.try_get(0).map_err(db)?;
            let id = key
                .parse::<u32>()
                .map_err(|_| WaError::Validation(format!("signed pre-key id {key:?}")))?;
            let sealed: Vec<u8> = row.try_get(1).map_err(db)?;
            out.push((id, self.open(Kind::SignedPreKey.name(), &key, &sealed)?));
        }
        out.sort_by_key(|(id, _)| *id);
        Ok(out)
    }

    async fn remove_signed_prekey(&self, id: u32) -> WaResult<()> {
        self.kv_delete(Kind::SignedPreKey, &id.to_string()).await
    }

    async fn put_sender_key(&self, address: &str, record: &[u8]) -> WaResult<()> {
        self.kv_put(Kind::SenderKey, address, record).await
    }

    async fn put_sender_keys_batch(&self, sender_keys: &[(Arc<str>, Bytes)]) -> WaResult<()> {
        self.kv_put_batch(
            Kind::SenderKey,
            sender_keys.iter().map(|(a, r)| (&**a, &r[..])).collect(),
        )
        .await
    }

    async fn get_sender_key(&self, address: &str) -> WaResult<Option<Vec<u8>>> {
        self.kv_get(Kind::SenderKey, address).await
    }

    async fn delete_sender_key(&self, address: &str) -> WaResult<()> {
        self.kv_delete(Kind::SenderKey, address).await
    }
}

#[async_trait]
impl AppSyncStore for WebDeviceStore {
    async fn get_sync_key(&self, key_id: &[u8]) -> WaResult<Option<AppStateSyncKey>> {
        let row = sqlx::query("SELECT v FROM web_sync_keys WHERE session_id = $1 AND key_id = $2")
            .bind(self.session)
            .bind(key_id.to_vec())
            .fetch_optional(&self.store.read)
            .await
            .map_err(db)?;
        let Some(row) = row else { return Ok(None) };
        let sealed: Vec<u8> = row.try_get(0).map_err(db)?;
        let plain = self.open("sync_key", &Self::sync_key_name(key_id), &sealed)?;
        serde_json::from_slice(&plain).map(Some).map_err(json_err)
    }

    /// Upserts the key and makes it the latest (`seq` one past the session's largest).
    async fn set_sync_key(&self, key_id: &[u8], key: AppStateSyncKey) -> WaResult<()> {
        let plain = serde_json::to_vec(&key).map_err(json_err)?;
        let sealed = self.seal("sync_key", &Self::sync_key_name(key_id), &plain);
        sqlx::query(
            "INSERT INTO web_sync_keys (session_id, key_id, v, seq) VALUES ($1, $2, $3, \
             (SELECT COALESCE(MAX(seq), 0) + 1 FROM web_sync_keys WHERE session_id = $4)) \
             ON CONFLICT (session_id, key_id) DO UPDATE SET v = excluded.v, seq = excluded.seq",
        )
        .bind(self.session)
        .bind(key_id.to_vec())
        .bind(sealed)
        .bind(self.session)
        .execute(&self.store.write)
        .await
        .map_err(db)?;
        Ok(())
    }

    /// The default state when none was stored or the stored one does not decode (the
    /// collection then syncs again from the start).
    async fn get_version(&self, name: &str) -> WaResult<HashState> {
        Ok(self
            .kv_get(Kind::AppStateVersion, name)
            .await?
            .and_then(|v| serde_json::from_slice(&v).ok())
            .unwrap_or_default())
    }

    async fn set_version(&self, name: &str, state: HashState) -> WaResult<()> {
        let v = serde_json::to_vec(&state).map_err(json_err)?;
        self.kv_put(Kind::AppStateVersion, name, &v).await
    }

    async fn put_mutation_macs(
        &self,
        name: &str,
        version: u64,
        mutations: &[AppStateMutationMAC],
    ) -> WaResult<()> {
        if mutations.is_empty() {
            return Ok(());
        }
        let version = i64::try_from(version)
            .map_err(|_| WaError::Validation(format!("app-state version {version}")))?;
        let rows = last_wins(
            mutations
                .iter()
                .map(|m| (m.index_mac.as_slice(), m.value_mac.as_slice())),
        );
        let mut tx = self.store.write.begin().await.map_err(db)?;
        for chunk in rows.chunks(CHUNK) {
            let mut p = Params::new(self.store.backend);
            let sql = format!(
                "INSERT INTO web_mutation_macs (session_id, name, index_mac, version, value_mac) VALUES {} \
                 ON CONFLICT (session_id, name, index_mac) DO UPDATE SET \
                 version = excluded.version, value_mac = excluded.value_mac",
                p.rows(chunk.len(), 5)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (index_mac, value_mac) in chunk {
                q = q
                    .bind(self.session)
                    .bind(name)
                    .bind(index_mac.to_vec())
                    .bind(version)
                    .bind(value_mac.to_vec());
            }
            q.execute(&mut *tx).await.map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    async fn get_mutation_mac(&self, name: &str, index_mac: &[u8]) -> WaResult<Option<Vec<u8>>> {
        let row = sqlx::query(
            "SELECT value_mac FROM web_mutation_macs WHERE session_id = $1 AND name = $2 AND index_mac = $3",
        )
        .bind(self.session)
        .bind(name)
        .bind(index_mac.to_vec())
        .fetch_optional(&self.store.read)
        .await
        .map_err(db)?;
        row.map(|r| r.try_get(0)).transpose().map_err(db)
    }

    async fn get_mutation_macs(
        &self,
        name: &str,
        index_macs: &[[u8; 32]],
    ) -> WaResult<HashMap<[u8; 32], Vec<u8>>> {
        let mut out = HashMap::with_capacity(index_macs.len());
        for chunk in index_macs.chunks(CHUNK) {
            let mut p = Params::new(self.store.backend);
            let sql = format!(
                "SELECT index_mac, value_mac FROM web_mutation_macs WHERE session_id = {} AND name = {} \
                 AND index_mac IN ({})",
                p.next(),
                p.next(),
                p.list(chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql))
                .bind(self.session)
                .bind(name);
            for mac in chunk {
                q = q.bind(mac.to_vec());
            }
            for row in q.fetch_all(&self.store.read).await.map_err(db)? {
                let index: Vec<u8> = row.try_get(0).map_err(db)?;
                let value: Vec<u8> = row.try_get(1).map_err(db)?;
                if let Ok(index) = <[u8; 32]>::try_from(index.as_slice()) {
                    out.insert(index, value);
                }
            }
        }
        Ok(out)
    }

    async fn delete_mutation_macs(&self, name: &str, index_macs: &[Vec<u8>]) -> WaResult<()> {
        if index_macs.is_empty() {
            return Ok(());
        }
        let mut tx = self.store.write.begin().await.map_err(db)?;
        for chunk in index_macs.chunks(CHUNK) {
            let mut p = Params::new(self.store.backend);
            let sql = format!(
                "DELETE FROM web_mutation_macs WHERE session_id = {} AND name = {} AND index_mac IN ({})",
                p.next(),
                p.next(),
                p.list(chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql))
                .bind(self.session)
                .bind(name);
            for mac in chunk {
                q = q.bind(mac.clone());
            }
            q.execute(&mut *tx).await.map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    async fn clear_mutation_macs(&self, name: &str) -> WaResult<()> {
        sqlx::query("DELETE FROM web_mutation_macs WHERE session_id = $1 AND name = $2")
            .bind(self.session)
            .bind(name)
            .execute(&self.store.write)
            .await
            .map_err(db)?;
        Ok(())
    }

    /// The key set last.
    async fn get_latest_sync_key_id(&self) -> WaResult<Option<Vec<u8>>> {
        let row = sqlx::query(
            "SELECT key_id FROM web_sync_keys WHERE session_id = $1 ORDER BY seq DESC LIMIT 1",
        )
        .bind(self.session)
        .fetch_optional(&self.store.read)
        .await
        .map_err(db)?;
        row.map(|r| r.try_get(0)).transpose().map_err(db)
    }
}

#[async_trait]
impl ProtocolStore for WebDeviceStore {
    async fn get_sender_key_devices(&self, group_jid: &str) -> WaResult<Vec<(String, bool)>> {
        let rows = sqlx::query(
            "SELECT device_jid, has_key FROM web_sender_key_devices \
             WHERE session_id = $1 AND group_jid = $2 ORDER BY device_jid",
        )
        .bind(self.session)
        .bind(group_jid)
        .fetch_all(&self.store.read)
        .await
        .map_err(db)?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get::<String, _>(0).map_err(db)?,
                    r.try_get::<i64, _>(1).map_err(db)? != 0,
                ))
            })
            .collect()
    }

    async fn set_sender_key_status(
        &self,
        group_jid: &str,
        entries: &[(&str, bool)],
    ) -> WaResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let entries = last_wins(entries.iter().copied());
        let mut tx = self.store.write.begin().await.map_err(db)?;
        for chunk in entries.chunks(CHUNK) {
            let mut p = Params::new(self.store.backend);
            let sql = format!(
                "INSERT INTO web_sender_key_devices (session_id, group_jid, device_jid, has_key) VALUES {} \
                 ON CONFLICT (session_id, group_jid, device_jid) DO UPDATE SET has_key = excluded.has_key",
                p.rows(chunk.len(), 4)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (device, has_key) in chunk {
                q = q
                    .bind(self.session)
                    .bind(group_jid)
                    .bind(*device)
                    .bind(i64::from(*has_key));
            }
            q.execute(&mut *tx).await.map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    async fn clear_sender_key_devices(&self, group_jid: &str) -> WaResult<()> {
        sqlx::query("DELETE FROM web_sender_key_devices WHERE session_id = $1 AND group_jid = $2")
            .bind(self.session)
            .bind(group_jid)
            .execute(&self.store.write)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn delete_sender_key_device_rows(&self, device_jids: &[&str]) -> WaResult<()> {
        if device_jids.is_empty() {
            return Ok(());
        }
        let mut tx = self.store.write.begin().await.map_err(db)?;
        for chunk in device_jids.chunks(CHUNK) {
            let mut p = Params::new(self.store.backend);
            let sql = format!(
                "DELETE FROM web_sender_key_devices WHERE session_id = {} AND device_jid IN ({})",
                p.next(),
                p.list(chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql)).bind(self.session);
            for device in chunk {
                q = q.bind(*device);
            }
            q.execute(&mut *tx).await.map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    async fn clear_all_sender_key_devices(&self) -> WaResult<()> {
        sqlx::query("DELETE FROM web_sender_key_devices WHERE session_id = $1")
            .bind(self.session)
            .execute(&self.store.write)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn get_lid_mapping(&self, lid: &str) -> WaResult<Option<LidPnMappingEntry>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {LID_COLUMNS} FROM web_lid_pn WHERE session_id = $1 AND lid = $2"
        )))
        .bind(self.session)
        .bind(lid)
        .fetch_optional(&self.store.read)
        .await
        .map_err(db)?;
        row.as_ref().map(lid_entry).transpose()
    }

    /// The most recently updated LID of `phone`.
    async fn get_pn_mapping(&self, phone: &str) -> WaResult<Option<LidPnMappingEntry>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {LID_COLUMNS} FROM web_lid_pn WHERE session_id = $1 AND phone_number = $2 \
             ORDER BY updated_at DESC, lid DESC LIMIT 1"
        )))
        .bind(self.session)
        .bind(phone)
        .fetch_optional(&self.store.read)
        .await
        .map_err(db)?;
        row.as_ref().map(lid_entry).transpose()
    }

    /// Keeps the first `created_at` of a LID; the rest is replaced.
    async fn put_lid_mapping(&self, entry: &LidPnMappingEntry) -> WaResult<()> {
        let mut conn = self.store.write.acquire().await.map_err(db)?;
        self.upsert_lid(&mut conn, entry).await
    }

    async fn put_lid_mappings(&self, entries: &[LidPnMappingEntry]) -> WaResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut tx = self.store.write.begin().await.map_err(db)?;
        for entry in entries {
            self.upsert_lid(&mut tx, entry).await?;
        }
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    async fn get_all_lid_mappings(&self) -> WaResult<Vec<LidPnMappingEntry>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {LID_COLUMNS} FROM web_lid_pn WHERE session_id = $1 ORDER BY lid"
        )))
        .bind(self.session)
        .fetch_all(&self.store.read)
        .await
        .map_err(db)?;
        rows.iter().map(lid_entry).collect()
    }

    async fn save_base_key(
        &self,
        address: &str,
        message_id: &str,
        base_key: &[u8],
    ) -> WaResult<()> {
        self.kv_put(
            Kind::BaseKey,
            &Self::base_key_key(address, message_id),
            base_key,
        )
        .await
    }

    async fn has_same_base_key(
        &self,
        address: &str,
        message_id: &str,
        current_base_key: &[u8],
    ) -> WaResult<bool> {
        Ok(self
            .kv_get(Kind::BaseKey, &Self::base_key_key(address, message_id))
            .await?
            .is_some_and(|stored| stored == current_base_key))
    }

    async fn delete_base_key(&self, address: &str, message_id: &str) -> WaResult<()> {
        self.kv_delete(Kind::BaseKey, &Self::base_key_key(address, message_id))
            .await
    }

    async fn update_device_list(&self, record: DeviceListRecord) -> WaResult<()> {
        let v = serde_json::to_vec(&record).map_err(json_err)?;
        self.kv_put(Kind::DeviceList, &record.user, &v).await
    }

    async fn update_device_lists(&self, records: Vec<DeviceListRecord>) -> WaResult<()> {
        let encoded = records
            .iter()
            .map(|r| serde_json::to_vec(r).map(|v| (r.user.as_str(), v)))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(json_err)?;
        self.kv_put_batch(
            Kind::DeviceList,
            encoded.iter().map(|(u, v)| (*u, v.as_slice())).collect(),
        )
        .await
    }

    async fn get_devices(&self, user: &str) -> WaResult<Option<DeviceListRecord>> {
        match self.kv_get(Kind::DeviceList, user).await? {
            None => Ok(None),
            Some(v) => serde_json::from_slice(&v).map(Some).map_err(json_err),
        }
    }

    async fn delete_devices(&self, user: &str) -> WaResult<()> {
        self.kv_delete(Kind::DeviceList, user).await
    }

    async fn get_group_metadata(&self, group_jid: &str) -> WaResult<Option<Vec<u8>>> {
        self.kv_get(Kind::GroupMetadata, group_jid).await
    }

    async fn put_group_metadata(&self, group_jid: &str, blob: &[u8]) -> WaResult<()> {
        self.kv_put(Kind::GroupMetadata, group_jid, blob).await
    }

    async fn delete_group_metadata(&self, group_jid: &str) -> WaResult<()> {
        self.kv_delete(Kind::GroupMetadata, group_jid).await
    }

    async fn get_tc_token(&self, jid: &str) -> WaResult<Option<TcTokenEntry>> {
        let row = sqlx::query(
            "SELECT token, token_timestamp, sender_timestamp FROM web_tc_tokens \
             WHERE session_id = $1 AND jid = $2",
        )
        .bind(self.session)
        .bind(jid)
        .fetch_optional(&self.store.read)
        .await
        .map_err(db)?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(TcTokenEntry {
            token: row.try_get(0).map_err(db)?,
            token_timestamp: row.try_get(1).map_err(db)?,
            sender_timestamp: row.try_get(2).map_err(db)?,
        }))
    }

    async fn put_tc_token(&self, jid: &str, entry: &TcTokenEntry) -> WaResult<()> {
        sqlx::query(
            "INSERT INTO web_tc_tokens (session_id, jid, token, token_timestamp, sender_timestamp) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (session_id, jid) DO UPDATE SET \
             token = excluded.token, token_timestamp = excluded.token_timestamp, \
             sender_timestamp = excluded.sender_timestamp",
        )
        .bind(self.session)
        .bind(jid)
        .bind(entry.token.clone())
        .bind(entry.token_timestamp)
        .bind(entry.sender_timestamp)
        .execute(&self.store.write)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn delete_tc_token(&self, jid: &str) -> WaResult<()> {
        sqlx::query("DELETE FROM web_tc_tokens WHERE session_id = $1 AND jid = $2")
            .bind(self.session)
            .bind(jid)
            .execute(&self.store.write)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn get_all_tc_token_jids(&self) -> WaResult<Vec<String>> {
        let rows = sqlx::query("SELECT jid FROM web_tc_tokens WHERE session_id = $1 ORDER BY jid")
            .bind(self.session)
            .fetch_all(&self.store.read)
            .await
            .map_err(db)?;
        rows.iter().map(|r| r.try_get(0).map_err(db)).collect()
    }

    async fn delete_expired_tc_tokens(
        &self,
        token_cutoff: i64,
        sender_cutoff: i64,
    ) -> WaResult<u32> {
        let done = sqlx::query(
            "DELETE FROM web_tc_tokens WHERE session_id = $1 \
             AND (length(token) = 0 OR token_timestamp < $2) \
             AND (sender_timestamp IS NULL OR sender_timestamp < $3)",
        )
        .bind(self.session)
        .bind(token_cutoff)
        .bind(sender_cutoff)
        .execute(&self.store.write)
        .await
        .map_err(db)?;
        Ok(u32::try_from(done.rows_affected()).unwrap_or(u32::MAX))
    }

    /// One upsert: the sender time only moves forward; a missing row becomes a placeholder.
    async fn touch_tc_token_sender_timestamp(
        &self,
        jid: &str,
        sender_timestamp: i64,
    ) -> WaResult<()> {
        sqlx::query(
            "INSERT INTO web_tc_tokens (session_id, jid, token, token_timestamp, sender_timestamp) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (session_id, jid) DO UPDATE SET \
             sender_timestamp = CASE WHEN web_tc_tokens.sender_timestamp IS NULL \
               OR web_tc_tokens.sender_timestamp < excluded.sender_timestamp \
               THEN excluded.sender_timestamp ELSE web_tc_tokens.sender_timestamp END",
        )
        .bind(self.session)
        .bind(jid)
        .bind(Vec::<u8>::new())
        .bind(sender_timestamp)
        .bind(sender_timestamp)
        .execute(&self.store.write)
        .await
        .map_err(db)?;
        Ok(())
    }

    /// One upsert, newer wins: a stored real token is replaced only by one at least as new;
    /// a placeholder always is. The sender time is kept.
    async fn store_received_tc_token(
        &self,
        jid: &str,
        token: &[u8],
        token_timestamp: i64,
    ) -> WaResult<()> {
        sqlx::query(
            "INSERT INTO web_tc_tokens (session_id, jid, token, token_timestamp, sender_timestamp) \
             VALUES ($1, $2, $3, $4, NULL) ON CONFLICT (session_id, jid) DO UPDATE SET \
             token = excluded.token, token_timestamp = excluded.token_timestamp \
             WHERE length(web_tc_tokens.token) = 0 \
               OR excluded.token_timestamp >= web_tc_tokens.token_timestamp",
        )
        .bind(self.session)
        .bind(jid)
        .bind(token.to_vec())
        .bind(token_timestamp)
        .execute(&self.store.write)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn store_sent_message(
        &self,
        chat_jid: &str,
        message_id: &str,
        payload: &[u8],
    ) -> WaResult<()> {
        let sealed = self.seal(
            "sent_message",
            &Self::sent_key(chat_jid, message_id),
            payload,
        );
        sqlx::query(
            "INSERT INTO web_sent_messages (session_id, chat_jid, message_id, payload, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (session_id, chat_jid, message_id) \
             DO UPDATE SET payload = excluded.payload, created_at = excluded.created_at",
        )
        .bind(self.session)
        .bind(chat_jid)
        .bind(message_id)
        .bind(sealed)
        .bind(self.now_secs())
        .execute(&self.store.write)
        .await
        .map_err(db)?;
        Ok(())
    }

    /// Read and delete in one statement: two retry receipts cannot both take it.
    async fn take_sent_message(
        &self,
        chat_jid: &str,
        message_id: &str,
    ) -> WaResult<Option<Vec<u8>>> {
        let row = sqlx::query(
            "DELETE FROM web_sent_messages WHERE session_id = $1 AND chat_jid = $2 \
             AND message_id = $3 RETURNING payload",
        )
        .bind(self.session)
        .bind(chat_jid)
        .bind(message_id)
        .fetch_optional(&self.store.write)
        .await
        .map_err(db)?;
        let Some(row) = row else { return Ok(None) };
        let sealed: Vec<u8> = row.try_get(0).map_err(db)?;
        self.open(
            "sent_message",
            &Self::sent_key(chat_jid, message_id),
            &sealed,
        )
        .map(Some)
    }

    async fn delete_expired_sent_messages(&self, cutoff_timestamp: i64) -> WaResult<u32> {
        let done =
            sqlx::query("DELETE FROM web_sent_messages WHERE session_id = $1 AND created_at < $2")
                .bind(self.session)
                .bind(cutoff_timestamp)
                .execute(&self.store.write)
                .await
                .map_err(db)?;
        Ok(u32::try_from(done.rows_affected()).unwrap_or(u32::MAX))
    }

    async fn store_pending_inbound(
        &self,
        chat: &str,
        sender: &str,
        id: &str,
        message: &[u8],
    ) -> WaResult<()> {
        let mut conn = self.store.write.acquire().await.map_err(db)?;
        let row = PendingInboundRow {
            chat,
            sender,
            id,
            message,
        };
        self.upsert_pending(&mut conn, &row, self.now_secs()).await
    }

    async fn get_pending_inbound(
        &self,
        chat: &str,
        sender: &str,
        id: &str,
    ) -> WaResult<Option<Vec<u8>>> {
        let row = sqlx::query(
            "SELECT message FROM web_pending_inbound WHERE session_id = $1 AND chat = $2 \
             AND sender = $3 AND id = $4",
        )
        .bind(self.session)
        .bind(chat)
        .bind(sender)
        .bind(id)
        .fetch_optional(&self.store.read)
        .await
        .map_err(db)?;
        let Some(row) = row else { return Ok(None) };
        let sealed: Vec<u8> = row.try_get(0).map_err(db)?;
        self.open(
            "pending_inbound",
            &Self::pending_key(chat, sender, id),
            &sealed,
        )
        .map(Some)
    }

    async fn delete_pending_inbound(&self, chat: &str, sender: &str, id: &str) -> WaResult<()> {
        sqlx::query(
            "DELETE FROM web_pending_inbound WHERE session_id = $1 AND chat = $2 \
             AND sender = $3 AND id = $4",
        )
        .bind(self.session)
        .bind(chat)
        .bind(sender)
        .bind(id)
        .execute(&self.store.write)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn delete_expired_pending_inbound(&self, cutoff_timestamp: i64) -> WaResult<u32> {
        let done = sqlx::query(
            "DELETE FROM web_pending_inbound WHERE session_id = $1 AND inserted_at < $2",
        )
        .bind(self.session)
        .bind(cutoff_timestamp)
        .execute(&self.store.write)
        .await
        .map_err(db)?;
        Ok(u32::try_from(done.rows_affected()).unwrap_or(u32::MAX))
    }

    async fn store_pending_inbound_batch(&self, rows: &[PendingInboundRow<'_>]) -> WaResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let now = self.now_secs();
        let mut tx = self.store.write.begin().await.map_err(db)?;
        for row in rows {
            self.upsert_pending(&mut tx, row, now).await?;
        }
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    async fn delete_pending_inbound_batch(&self, keys: &[PendingInboundKey<'_>]) -> WaResult<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut tx = self.store.write.begin().await.map_err(db)?;
        for key in keys {
            sqlx::query(
                "DELETE FROM web_pending_inbound WHERE session_id = $1 AND chat = $2 \
                 AND sender = $3 AND id = $4",
            )
            .bind(self.session)
            .bind(key.chat)
            .bind(key.sender)
            .bind(key.id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(())
    }
}

#[async_trait]
impl MsgSecretStore for WebDeviceStore {
    async fn put_msg_secrets(&self, entries: Vec<MsgSecretEntry>) -> WaResult<usize> {
        if entries.is_empty() {
            return Ok(0);
        }
        let mut tx = self.store.write.begin().await.map_err(db)?;
        for entry in &entries {
            self.upsert_msg_secret(&mut tx, entry).await?;
        }
        tx.commit().await.map_err(db)?;
        Ok(entries.len())
    }

    async fn get_msg_secret(
        &self,
        chat: &str,
        sender: &str,
        msg_id: &str,
    ) -> WaResult<Option<Vec<u8>>> {
        Ok(self
            .get_msg_secret_with_ts(chat, sender, msg_id)
            .await?
            .map(|(secret, _)| secret))
    }

    async fn get_msg_secret_with_ts(
        &self,
        chat: &str,
        sender: &str,
        msg_id: &str,
    ) -> WaResult<Option<(Vec<u8>, i64)>> {
        let row = sqlx::query(
            "SELECT secret, message_ts FROM web_msg_secrets WHERE session_id = $1 AND chat = $2 \
             AND sender = $3 AND msg_id = $4",
        )
        .bind(self.session)
        .bind(chat)
        .bind(sender)
        .bind(msg_id)
        .fetch_optional(&self.store.read)
        .await
        .map_err(db)?;
        let Some(row) = row else { return Ok(None) };
        let sealed: Vec<u8> = row.try_get(0).map_err(db)?;
        let ts: i64 = row.try_get(1).map_err(db)?;
        let secret = self.open(
            "msg_secret",
            &Self::msg_secret_key(chat, sender, msg_id),
            &sealed,
        )?;
        Ok(Some((secret, ts)))
    }

    async fn delete_expired_msg_secrets(&self, cutoff_timestamp: i64) -> WaResult<u32> {
        let done = sqlx::query(
            "DELETE FROM web_msg_secrets WHERE session_id = $1 AND expires_at <> 0 \
             AND expires_at <= $2",
        )
        .bind(self.session)
        .bind(cutoff_timestamp)
        .execute(&self.store.write)
        .await
        .map_err(db)?;
        Ok(u32::try_from(done.rows_affected()).unwrap_or(u32::MAX))
    }
}

impl WebDeviceStore {
    async fn write_device(&self, device: &Device, replace: bool) -> WaResult<()> {
        let plain = serde_json::to_vec(device).map_err(json_err)?;
        let sealed = self.seal("device", "", &plain);
        let on_conflict = if replace {
            "DO UPDATE SET pn = excluded.pn, lid = excluded.lid, device = excluded.device, \
             updated_at = excluded.updated_at"
        } else {
            "DO NOTHING"
        };
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO web_devices (session_id, pn, lid, device, updated_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (session_id) {on_conflict}"
        )))
        .bind(self.session)
        .bind(device.pn.as_ref().map(|j| j.to_string()))
        .bind(device.lid.as_ref().map(|j| j.to_string()))
        .bind(sealed)
        .bind(self.clock.now_millis())
        .execute(&self.store.write)
        .await
        .map_err(db)?;
        Ok(())
    }
}

#[async_trait]
impl DeviceStore for WebDeviceStore {
    async fn save(&self, device: &Device) -> WaResult<()> {
        self.write_device(device, true).await
    }

    async fn load(&self) -> WaResult<Option<Device>> {
        let row = sqlx::query("SELECT device FROM web_devices WHERE session_id = $1")
            .bind(self.session)
            .fetch_optional(&self.store.read)
            .await
            .map_err(db)?;
        let Some(row) = row else { return Ok(None) };
        let sealed: Vec<u8> = row.try_get(0).map_err(db)?;
        let plain = self.open("device", "", &sealed)?;
        serde_json::from_slice(&plain).map(Some).map_err(json_err)
    }

    async fn exists(&self) -> WaResult<bool> {
        self.store
            .web_device_exists(self.session)
            .await
            .map_err(|e| WaError::Database(Box::new(e)))
    }

    /// Stores a fresh device (new keys) unless the session has one; the id is only logged
    /// by the client, and a session has one device, so it is always 1.
    async fn create(&self) -> WaResult<i32> {
        self.write_device(&Device::new(), false).await?;
        Ok(1)
    }

    /// The rows live in the shared database, not in this process.
    async fn resource_report(&self) -> StorageResourceReport {
        StorageResourceReport {
            memory_bytes: Some(0),
            ..Default::default()
        }
    }
}
