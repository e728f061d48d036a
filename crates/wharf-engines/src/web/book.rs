//! The address book WhatsApp syncs to a linked device (app-state contact actions, push
//! names): kept per session by a [`ContactBook`], one entry per person whether WhatsApp
//! names them by number or by LID.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Mutex,
};

use async_trait::async_trait;
use wharf_core::{Jid, SessionId, jid::JidServer, social::EngineContact};

use super::port::ContactChange;

/// Where each session's synced address book is kept.
#[async_trait]
pub trait ContactBook: Send + Sync {
    /// The session's entries whose JID or LID is one of `keys`.
    async fn find(&self, session: SessionId, keys: &[Jid]) -> Result<Vec<EngineContact>, String>;
    /// Removes the entries keyed by `removed`, then writes `entry` (keyed by its JID).
    async fn replace(
        &self,
        session: SessionId,
        removed: &[Jid],
        entry: &EngineContact,
    ) -> Result<(), String>;
    /// Every entry of the session.
    async fn contacts(&self, session: SessionId) -> Result<Vec<EngineContact>, String>;
    /// Deletes the session's book (its device was unlinked).
    async fn forget(&self, session: SessionId) -> Result<(), String>;
}

/// Folds `change` into what is stored of the same person (`known`): answers the entries to
/// remove and the one to write. A number wins over a LID as the key; a value the change
/// does not carry is kept.
pub fn merge(known: &[EngineContact], change: &ContactChange) -> (Vec<Jid>, EngineContact) {
    let mut entry = EngineContact {
        jid: change.jid.clone(),
        lid: change.lid.clone(),
        name: None,
        push_name: None,
    };
    // A LID the book already links to a number is that number's entry.
    if change.jid.server() == JidServer::Lid
        && let Some(linked) = known
            .iter()
            .find(|k| k.lid.as_ref() == Some(&change.jid) && k.jid.server() == JidServer::User)
    {
        entry.jid = linked.jid.clone();
        entry.lid = Some(change.jid.clone());
    }
    let mut removed = Vec::new();
    for k in known {
        let same = k.jid == entry.jid
            || (entry.lid.is_some() && (k.lid == entry.lid || Some(&k.jid) == entry.lid.as_ref()));
        if !same {
            continue;
        }
        entry.lid = entry.lid.take().or_else(|| k.lid.clone());
        entry.name = entry.name.take().or_else(|| k.name.clone());
        entry.push_name = entry.push_name.take().or_else(|| k.push_name.clone());
        if k.jid != entry.jid {
            removed.push(k.jid.clone());
        }
    }
    if change.name.is_some() {
        entry.name = change.name.clone();
    }
    if change.push_name.is_some() {
        entry.push_name = change.push_name.clone();
    }
    (removed, entry)
}

/// Applies changes to `book`, one after the other.
pub async fn apply(
    book: &dyn ContactBook,
    session: SessionId,
    changes: &[ContactChange],
) -> Result<(), String> {
    for change in changes {
        let keys: Vec<Jid> = std::iter::once(change.jid.clone())
            .chain(change.lid.clone())
            .collect();
        let known = book.find(session, &keys).await?;
        let (removed, entry) = merge(&known, change);
        book.replace(session, &removed, &entry).await?;
    }
    Ok(())
}

/// Books kept in memory only (lost on restart): tests and the engine without a database.
#[derive(Default)]
pub struct MemoryBook {
    books: Mutex<HashMap<SessionId, BTreeMap<String, EngineContact>>>,
}

#[async_trait]
impl ContactBook for MemoryBook {
    async fn find(&self, session: SessionId, keys: &[Jid]) -> Result<Vec<EngineContact>, String> {
        let books = self.books.lock().unwrap();
        Ok(books
            .get(&session)
            .map(|b| {
                b.values()
                    .filter(|c| {
                        keys.iter()
                            .any(|k| &c.jid == k || c.lid.as_ref() == Some(k))
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn replace(
        &self,
        session: SessionId,
        removed: &[Jid],
        entry: &EngineContact,
    ) -> Result<(), String> {
        let mut books = self.books.lock().unwrap();
        let book = books.entry(session).or_default();
        for r in removed {
            book.remove(&r.to_string());
        }
        book.insert(entry.jid.to_string(), entry.clone());
        Ok(())
    }

    async fn contacts(&self, session: SessionId) -> Result<Vec<EngineContact>, String> {
        let books = self.books.lock().unwrap();
        Ok(books
            .get(&session)
            .map(|b| b.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn forget(&self, session: SessionId) -> Result<(), String> {
        self.books.lock().unwrap().remove(&session);
        Ok(())
    }
}
