//! The contacts import, and on SQLite its group commit: imports that wait for the one
//! writer are written in one transaction.
//!
//! An import's cost on SQLite is mostly pages: each contact lands at a random place in the
//! name index and in its labels' rows, and a transaction writes every page it dirtied to the
//! WAL once. Contacts of several imports in one transaction share more of those pages, so
//! while one import is being written, the imports that arrive queue and go together in the
//! next transaction (up to [`GROUP_CONTACTS`] contacts). Each answers as if alone: calls are
//! written in the order they arrived, so of two calls with one phone the first stores it.
//! If a group's transaction fails on a rule a row broke (a unique or foreign key), each of
//! its imports is retried in a transaction of its own, so one import's failure is not
//! another's; if the database itself fails, every import of the group fails with it. PostgreSQL runs imports side by side on
//! its connections instead.
//!
//! An import handed to the group commit is written even if its caller goes away meanwhile
//! (as a send is once accepted); a retried call then finds its contacts by phone.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use sqlx::{AnyConnection, Row};
use tokio::sync::{mpsc, oneshot};

use super::{ContactRow, Counts, INSERT_COLUMNS, INSERT_COUNT, bind_insert, insert_labels};
use crate::{Backend, Params, Result, Store, StoreError, pool::Pool};

/// A group holds at most this many contacts (four imports of the largest size), or one
/// import: a larger transaction holds the writer, and every send behind it, longer.
const GROUP_CONTACTS: usize = 4_000;

/// How many imports may wait for the group commit (each holds at most 1,000 contacts).
const QUEUE: usize = 64;

/// One import waiting for the group commit.
pub(crate) struct PendingImport {
    contacts: Vec<ContactRow>,
    reply: oneshot::Sender<Result<Vec<bool>>>,
}

impl Store {
    /// Stores the contacts that are new by phone (in the session) and returns which were
    /// (one flag per contact, in order). Contacts must have distinct phones.
    pub async fn import_contacts(&self, contacts: &[ContactRow]) -> Result<Vec<bool>> {
        if self.backend == Backend::Postgres {
            let mut tx = self.write.begin().await?;
            let inserted = import_in(&mut tx, self.backend, contacts).await?;
            tx.commit().await?;
            return Ok(flags(contacts, &inserted));
        }
        let (reply, done) = oneshot::channel();
        let pending = PendingImport {
            contacts: contacts.to_vec(),
            reply,
        };
        // The task is started on first use, and again if it ever stopped (a panic, or the
        // runtime that ran it shut down), so one failure is not every later import's.
        let queue = {
            let mut slot = self
                .imports
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match &*slot {
                Some(queue) if !queue.is_closed() => queue.clone(),
                _ => {
                    let (tx, rx) = mpsc::channel(QUEUE);
                    tokio::spawn(group_commit(
                        self.write.clone(),
                        self.backend,
                        rx,
                        self.import_groups.clone(),
                    ));
                    *slot = Some(tx.clone());
                    tx
                }
            }
        };
        let stopped = || StoreError::Sqlite("the contact import group commit stopped".into());
        queue.send(pending).await.map_err(|_| stopped())?;
        done.await.map_err(|_| stopped())?
    }

    /// How many transactions of the import group commit wrote more than one import (SQLite),
    /// since the store was opened.
    pub fn contact_import_groups(&self) -> u64 {
        self.import_groups.load(Ordering::Relaxed)
    }
}

/// Writes the imports of `queue` in groups until every sender is gone; counts in `groups`
/// the transactions of more than one import.
async fn group_commit(
    pool: Pool,
    backend: Backend,
    mut queue: mpsc::Receiver<PendingImport>,
    groups: Arc<AtomicU64>,
) {
    // An import taken from the queue that would have made the group too large: it starts
    // the next one.
    let mut carried: Option<PendingImport> = None;
    loop {
        let first = match carried.take() {
            Some(first) => first,
            None => match queue.recv().await {
                Some(first) => first,
                None => return,
            },
        };
        let mut size = first.contacts.len();
        let mut group = vec![first];
        while let Ok(next) = queue.try_recv() {
            if size + next.contacts.len() > GROUP_CONTACTS {
                carried = Some(next);
                break;
            }
            size += next.contacts.len();
            group.push(next);
        }
        if group.len() > 1 {
            groups.fetch_add(1, Ordering::Relaxed);
        }
        let all: Vec<&ContactRow> = group.iter().flat_map(|p| &p.contacts).collect();
        match write_group(&pool, backend, &all).await {
            Ok(inserted) => {
                for p in group {
                    let _ = p.reply.send(Ok(flags(&p.contacts, &inserted)));
                }
            }
            // A rule one of the imports broke: each is tried alone, so only that one fails.
            Err(e) if group.len() > 1 && broken_by_a_row(&e) => {
                tracing::warn!(error = %e, imports = group.len(), "a group of contact imports broke a rule; retrying each alone");
                for p in group {
                    let one: Vec<&ContactRow> = p.contacts.iter().collect();
                    let result = write_group(&pool, backend, &one)
                        .await
                        .map(|inserted| flags(&p.contacts, &inserted));
                    let _ = p.reply.send(result);
                }
            }
            // The database failed (unreachable, busy, full): every import of the group fails
            // with it, without a retry each that would fail the same way.
            Err(e) => {
                let message = e.to_string();
                let mut first = Some(e);
                for p in group {
                    let error = first
                        .take()
                        .unwrap_or_else(|| StoreError::Sqlite(message.clone()));
                    let _ = p.reply.send(Err(error));
                }
            }
        }
    }
}

/// Whether `e` is a rule of the schema that a row broke (unique, foreign key, not null,
/// check), as opposed to the database failing.
fn broken_by_a_row(e: &StoreError) -> bool {
    match e {
        StoreError::Database(sqlx::Error::Database(db)) => {
            !matches!(db.kind(), sqlx::error::ErrorKind::Other)
        }
        _ => false,
    }
}

/// Imports `contacts` in one transaction; the ids stored, with their seq.
async fn write_group(
    pool: &Pool,
    backend: Backend,
    contacts: &[&ContactRow],
) -> Result<HashMap<String, i64>> {
    let mut tx = pool.begin().await?;
    let inserted = import_in(&mut tx, backend, contacts).await?;
    tx.commit().await?;
    Ok(inserted)
}

/// Which of `contacts` were stored.
fn flags(contacts: &[ContactRow], inserted: &HashMap<String, i64>) -> Vec<bool> {
    contacts
        .iter()
        .map(|c| inserted.contains_key(&c.id.to_string()))
        .collect()
}

/// Inserts the contacts new by phone, in order, with their label rows and counts; the ids
/// stored, with their seq.
async fn import_in<C: std::borrow::Borrow<ContactRow>>(
    conn: &mut AnyConnection,
    backend: Backend,
    contacts: &[C],
) -> Result<HashMap<String, i64>> {
    let mut inserted: HashMap<String, i64> = HashMap::new();
    for chunk in contacts.chunks(500) {
        let sql = format!(
            "INSERT INTO contacts ({INSERT_COLUMNS}) VALUES {} \
             ON CONFLICT (session_id, phone) DO NOTHING RETURNING id, seq",
            Params::new(backend).rows(chunk.len(), INSERT_COUNT)
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for c in chunk {
            q = bind_insert(q, c.borrow());
        }
        for row in q.fetch_all(&mut *conn).await? {
            inserted.insert(row.try_get("id")?, row.try_get("seq")?);
        }
    }
    let new: Vec<(&ContactRow, i64)> = contacts
        .iter()
        .map(|c| c.borrow())
        .filter_map(|c| inserted.get(&c.id.to_string()).map(|seq| (c, *seq)))
        .collect();
    insert_labels(conn, &new).await?;
    let mut counts = Counts::default();
    for (c, _) in &new {
        counts.add(c, 1);
    }
    counts.apply(conn).await?;
    Ok(inserted)
}
