//! Message secrets by chat, sender and message id (what opens poll votes and other
//! message add-ons), sealed.

use super::*;

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
