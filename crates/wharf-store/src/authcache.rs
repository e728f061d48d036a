//! Keys and sessions cached in memory for the send path, made exact by the auth epoch.
//!
//! Every send used to read its key and its session, two hand-offs to a reader thread per
//! request. The send path now takes both from memory. Each entry remembers the value of the
//! `auth_epoch` counter when it was read (in the same statement as the row), and triggers
//! bump that counter whenever a key is revoked or a session's status, number, engine or
//! account changes, by this process or any other. A send built from cached entries is
//! committed only if the counter still has their value at commit time (checked inside the
//! insert); otherwise the commit writes nothing, answers [`crate::StoreError::Stale`], the
//! cache is emptied and the send is decided again from fresh reads. A send's transaction
//! reads the counter first and, on PostgreSQL, holds it (`FOR SHARE`) until it commits, so a
//! revocation waits for sends in flight: no send commits after the revocation committed.
//!
//! Nothing else may use these entries: other routes read the database on every request.

use std::{collections::HashMap, sync::Mutex};

use wharf_core::{AccountId, SessionId};

use crate::{KeyRow, SessionRow, Store};

/// Entries kept at most per kind; a full cache is emptied rather than managed.
const MAX_ENTRIES: usize = 10_000;

/// The SQL expression of the current epoch.
pub(crate) const EPOCH: &str = "(SELECT n FROM auth_epoch WHERE id = 1)";

/// Reads the epoch at the start of a send's transaction and, on PostgreSQL, holds it: a
/// change that bumps it (a revocation, say) then waits for the send to commit, and the
/// send's later statements see the same value. On SQLite the write transaction already
/// excludes every other writer.
pub(crate) fn hold_epoch(backend: crate::Backend) -> &'static str {
    match backend {
        crate::Backend::Sqlite => "SELECT n FROM auth_epoch WHERE id = 1",
        crate::Backend::Postgres => "SELECT n FROM auth_epoch WHERE id = 1 FOR SHARE",
    }
}

#[derive(Debug, Default)]
pub(crate) struct AuthCache {
    keys: Mutex<HashMap<String, (KeyRow, i64)>>,
    sessions: Mutex<HashMap<(AccountId, SessionId), (SessionRow, i64)>>,
}

impl AuthCache {
    pub(crate) fn key(&self, hash: &str) -> Option<(KeyRow, i64)> {
        self.keys.lock().ok()?.get(hash).cloned()
    }

    pub(crate) fn put_key(&self, hash: &str, row: KeyRow, epoch: i64) {
        if let Ok(mut keys) = self.keys.lock() {
            if keys.len() >= MAX_ENTRIES {
                keys.clear();
            }
            keys.insert(hash.to_owned(), (row, epoch));
        }
    }

    pub(crate) fn forget_key(&self, hash: &str) {
        if let Ok(mut keys) = self.keys.lock() {
            keys.remove(hash);
        }
    }

    pub(crate) fn session(&self, account: AccountId, id: SessionId) -> Option<(SessionRow, i64)> {
        self.sessions.lock().ok()?.get(&(account, id)).cloned()
    }

    pub(crate) fn put_session(&self, row: SessionRow, epoch: i64) {
        if let Ok(mut sessions) = self.sessions.lock() {
            if sessions.len() >= MAX_ENTRIES {
                sessions.clear();
            }
            sessions.insert((row.account_id, row.id), (row, epoch));
        }
    }

    pub(crate) fn clear(&self) {
        if let Ok(mut keys) = self.keys.lock() {
            keys.clear();
        }
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.clear();
        }
    }
}

impl Store {
    /// Empties the send path's cache of keys and sessions (a commit found it stale, or a
    /// cached key turned out revoked).
    pub fn forget_cached_auth(&self) {
        self.auth.clear();
    }
}
