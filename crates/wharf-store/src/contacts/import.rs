//! The contacts import, and on SQLite its group commit: imports that wait for the one
//! writer are written in one transaction.
//!
//! An import's cost on SQLite is mostly pages: each contact lands at a random place in the
//! name index and in its labels' rows, and a transaction writes every page it dirtied to the
//! WAL once. Contacts of several imports in one transaction share more of those pages, so
//! while one import is being written, the imports that arrive queue and go together in the
//! next transaction (up to [`GROUP_CONTACTS`] contacts). Each answers as if alone: calls are
//! written in the order they arrived, so of two calls with one phone the first stores it.
//! If a group's transaction fails, each of its imports is retried in a transaction of its
//! own, so one import's failure is not another's. PostgreSQL runs imports side by side on
//! its connections instead.
//!
//! An import handed to the group commit is written even if its caller goes away meanwhile
//! (as a send is once accepted); a retried call then finds its contacts by phone.

use std::collections::HashMap;

use sqlx::{AnyConnection, Row};
use tokio::sync::{mpsc, oneshot};

use super::{ContactRow, Counts, INSERT_COLUMNS, INSERT_COUNT, bind_insert, insert_labels};
use crate::{Backend, Params, Result, Store, StoreError, pool::Pool};

/// A group stops taking imports once it holds this many contacts (four imports of the
/// largest size): a larger transaction holds the writer, and every send behind it, longer.
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
        let queue = self.imports.get_or_init(|| {
            let (tx, rx) = mpsc::channel(QUEUE);
            tokio::spawn(group_commit(self.write.clone(), self.backend, rx));
            tx
        });
        queue
            .send(pending)
            .await
            .map_err(|_| StoreError::Corrupt("the import group commit stopped".into()))?;
        done.await
            .map_err(|_| StoreError::Corrupt("the import group commit dropped an import".into()))?
    }
}

/// Writes the imports of `queue` in groups until every sender is gone.
async fn group_commit(pool: Pool, backend: Backend, mut queue: mpsc::Receiver<PendingImport>) {
    while let Some(first) = queue.recv().await {
        let mut size = first.contacts.len();
        let mut group = vec![first];
        while size < GROUP_CONTACTS {
            match queue.try_recv() {
                Ok(next) => {
                    size += next.contacts.len();
                    group.push(next);
                }
                Err(_) => break,
            }
        }
        let all: Vec<&ContactRow> = group.iter().flat_map(|p| &p.contacts).collect();
        match write_group(&pool, backend, &all).await {
            Ok(inserted) => {
                for p in group {
                    let _ = p.reply.send(Ok(flags(&p.contacts, &inserted)));
                }
            }
            Err(e) if group.len() == 1 => {
                if let Some(p) = group.pop() {
                    let _ = p.reply.send(Err(e));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, imports = group.len(), "a group of contact imports failed; retrying each alone");
                for p in group {
                    let one: Vec<&ContactRow> = p.contacts.iter().collect();
                    let result = write_group(&pool, backend, &one)
                        .await
                        .map(|inserted| flags(&p.contacts, &inserted));
                    let _ = p.reply.send(result);
                }
            }
        }
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
