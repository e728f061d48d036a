//! Protocol state: sender-key devices, LID maps, base keys, device lists, group metadata,
//! privacy tokens, and the sent-message and pending-inbound buffers.

use super::*;

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
        let sealed: Vec<u8> = row.try_get(0).map_err(db)?;
        Ok(Some(TcTokenEntry {
            token: self.open_tc_token(jid, &sealed)?,
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
        .bind(self.seal_tc_token(jid, &entry.token))
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
        .bind(self.seal_tc_token(jid, token))
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

impl WebDeviceStore {
    /// A privacy token as stored: sealed, except the empty placeholder (a row that only
    /// records a sender time), which stays empty so the queries can tell it apart.
    fn seal_tc_token(&self, jid: &str, token: &[u8]) -> Vec<u8> {
        if token.is_empty() {
            Vec::new()
        } else {
            self.seal("tc_token", jid, token)
        }
    }

    fn open_tc_token(&self, jid: &str, stored: &[u8]) -> WaResult<Vec<u8>> {
        if stored.is_empty() {
            Ok(Vec::new())
        } else {
            self.open("tc_token", jid, stored)
        }
    }
}
