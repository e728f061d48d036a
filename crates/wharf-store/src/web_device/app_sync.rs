//! App-state sync: sync keys, collection versions and mutation MACs.

use super::*;

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
