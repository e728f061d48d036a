//! Signal: identities, sessions, pre-keys, signed pre-keys and sender keys.

use super::*;

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
