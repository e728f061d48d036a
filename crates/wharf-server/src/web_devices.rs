//! The web engine's linked devices in Wharf's own database: whatsapp-rust's storage trait on
//! `wharf_store::WebDeviceStore`, its secrets sealed with the server key. One backup holds
//! everything, and the device survives a restart (no new QR).

use std::sync::Arc;

use async_trait::async_trait;
use wharf_core::{Jid, Sealer, SessionId, social::EngineContact};
use wharf_engines::web::{ContactBook, client::WebDeviceStores};
use wharf_store::{Store, WebContactRow, WebDeviceStore};
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

/// The address books WhatsApp syncs to web devices, in the database beside the devices.
pub struct DatabaseBook {
    store: Store,
}

impl DatabaseBook {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

fn contact_of(row: WebContactRow) -> Option<EngineContact> {
    Some(EngineContact {
        jid: Jid::parse(&row.jid).ok()?,
        lid: row.lid.as_deref().and_then(|l| Jid::parse(l).ok()),
        name: row.name,
        push_name: row.push_name,
    })
}

#[async_trait]
impl ContactBook for DatabaseBook {
    async fn find(&self, session: SessionId, keys: &[Jid]) -> Result<Vec<EngineContact>, String> {
        let keys: Vec<String> = keys.iter().map(ToString::to_string).collect();
        let rows = self
            .store
            .web_contacts_matching(session, &keys)
            .await
            .map_err(|e| e.to_string())?;
        Ok(rows.into_iter().filter_map(contact_of).collect())
    }

    async fn replace(
        &self,
        session: SessionId,
        removed: &[Jid],
        entry: &EngineContact,
    ) -> Result<(), String> {
        let removed: Vec<String> = removed.iter().map(ToString::to_string).collect();
        let row = WebContactRow {
            jid: entry.jid.to_string(),
            lid: entry.lid.as_ref().map(ToString::to_string),
            name: entry.name.clone(),
            push_name: entry.push_name.clone(),
        };
        self.store
            .replace_web_contact(session, &removed, &row)
            .await
            .map_err(|e| e.to_string())
    }

    async fn contacts(&self, session: SessionId) -> Result<Vec<EngineContact>, String> {
        let rows = self
            .store
            .web_contacts(session)
            .await
            .map_err(|e| e.to_string())?;
        Ok(rows.into_iter().filter_map(contact_of).collect())
    }

    async fn forget(&self, session: SessionId) -> Result<(), String> {
        self.store
            .delete_web_contacts(session)
            .await
            .map_err(|e| format!("cannot delete the synced address book: {e}"))
    }
}
