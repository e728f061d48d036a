//! The device itself (its keys and identity), sealed as one row.

use super::*;

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
