//! The web engine's linked devices in Wharf's own database: whatsapp-rust's storage trait on
//! `wharf_store::WebDeviceStore`, its secrets sealed with the server key. One backup holds
//! everything, and the device survives a restart (no new QR).

use std::sync::Arc;

use async_trait::async_trait;
use wharf_core::{Sealer, SessionId};
use wharf_engines::web::client::WebDeviceStores;
use wharf_store::{Store, WebDeviceStore};
use whatsapp_rust::store::traits::Backend;

/// Devices kept in the database, one [`WebDeviceStore`] per session.
pub struct DatabaseDevices {
    store: Store,
    sealer: Arc<dyn Sealer>,
}

impl DatabaseDevices {
    pub fn new(store: Store, sealer: Arc<dyn Sealer>) -> Self {
        Self { store, sealer }
    }
}

#[async_trait]
impl WebDeviceStores for DatabaseDevices {
    async fn backend(&self, session: SessionId) -> Result<Arc<dyn Backend>, String> {
        Ok(Arc::new(WebDeviceStore::new(
            self.store.clone(),
            session,
            self.sealer.clone(),
        )))
    }

    async fn forget(&self, session: SessionId) -> Result<(), String> {
        self.store
            .delete_web_device(session)
            .await
            .map_err(|e| format!("cannot delete the linked device: {e}"))
    }
}
