//! The contacts CRM (Zernio Business API): one list per session, tags and groups indexed
//! in `contact_labels`, substring search through a trigram index (FTS5 on SQLite, pg_trgm
//! on PostgreSQL), and the business profiles the emulator keeps.

use std::collections::{BTreeMap, HashSet};

use sqlx::{AnyConnection, Row, any::AnyRow};
use wharf_core::{AccountId, ContactId, SessionId};

use crate::{Backend, Params, Result, Store, StoreError, conflict_or};

mod anchors;
mod import;
mod labels;
mod list;
mod search_cache;
mod touch;

pub(crate) use anchors::Anchors;
pub(crate) use import::PendingImport;
use labels::insert_labels;
pub(crate) use search_cache::SearchCache;
pub(crate) use touch::{touch_inbound, touch_outbound};

/// A stored contact.
#[derive(Debug, Clone, PartialEq)]
pub struct ContactRow {
    pub id: ContactId,
    pub account_id: AccountId,
    pub session_id: SessionId,
    /// E.164 with `+`.
    pub phone: String,
    pub name: String,
    pub email: Option<String>,
    pub company: Option<String>,
    pub tags: Vec<String>,
    pub groups: Vec<String>,
    pub is_opted_in: bool,
    pub opt_in_at: Option<i64>,
    pub opt_out_at: Option<i64>,
    pub is_blocked: bool,
    pub custom_fields: BTreeMap<String, String>,
    pub notes: Option<String>,
    pub last_sent_at: Option<i64>,
    pub last_received_at: Option<i64>,
    pub sent_count: i64,
    pub received_count: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What the list shows.
#[derive(Debug, Clone)]
pub struct ContactQuery {
    pub account: AccountId,
    pub session: SessionId,
    /// A substring of the name, phone, email or company (any case).
    pub search: Option<String>,
    pub tag: Option<String>,
    pub group: Option<String>,
    pub opted_in: Option<bool>,
    pub limit: i64,
    pub skip: i64,
}

/// One page of the list.
#[derive(Debug, Clone)]
pub struct ContactPage {
    pub contacts: Vec<ContactRow>,
    /// Matches in all.
    pub total: i64,
    /// Every tag and group of the session's contacts (the filters one can pick).
    pub tags: Vec<String>,
    pub groups: Vec<String>,
}

/// A group with its counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupCount {
    pub name: String,
    pub total: i64,
    pub opted_in: i64,
}

/// The groups of a session with the session's totals.
#[derive(Debug, Clone)]
pub struct GroupSummary {
    pub groups: Vec<GroupCount>,
    pub total_contacts: i64,
    pub opted_in_contacts: i64,
}

const COLUMNS: &str = "id, account_id, session_id, phone, name, email, company, tags, group_names, \
     is_opted_in, opt_in_at, opt_out_at, is_blocked, custom_fields, notes, last_sent_at, \
     last_received_at, sent_count, received_count, created_at, updated_at";

/// Columns written on insert, in binding order (see [`bind_insert`]).
const INSERT_COLUMNS: &str = "id, account_id, session_id, phone, name, sort_name, email, company, \
     tags, group_names, is_opted_in, opt_in_at, opt_out_at, is_blocked, custom_fields, notes, \
     search, last_sent_at, last_received_at, sent_count, received_count, created_at, updated_at";
const INSERT_COUNT: usize = 23;

fn c_columns() -> String {
    COLUMNS
        .split(", ")
        .map(|c| format!("c.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

impl ContactRow {
    fn from_row(row: &AnyRow) -> Result<Self> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("contact {what}"));
        let id: String = row.try_get("id")?;
        let account: String = row.try_get("account_id")?;
        let session: String = row.try_get("session_id")?;
        let tags: String = row.try_get("tags")?;
        let groups: String = row.try_get("group_names")?;
        let custom: String = row.try_get("custom_fields")?;
        Ok(Self {
            id: id.parse().map_err(|_| corrupt("id"))?,
            account_id: account.parse().map_err(|_| corrupt("account_id"))?,
            session_id: session.parse().map_err(|_| corrupt("session_id"))?,
            phone: row.try_get("phone")?,
            name: row.try_get("name")?,
            email: row.try_get("email")?,
            company: row.try_get("company")?,
            tags: serde_json::from_str(&tags).map_err(|_| corrupt("tags"))?,
            groups: serde_json::from_str(&groups).map_err(|_| corrupt("group_names"))?,
            is_opted_in: row.try_get::<i64, _>("is_opted_in")? != 0,
            opt_in_at: row.try_get("opt_in_at")?,
            opt_out_at: row.try_get("opt_out_at")?,
            is_blocked: row.try_get::<i64, _>("is_blocked")? != 0,
            custom_fields: serde_json::from_str(&custom).map_err(|_| corrupt("custom_fields"))?,
            notes: row.try_get("notes")?,
            last_sent_at: row.try_get("last_sent_at")?,
            last_received_at: row.try_get("last_received_at")?,
            sent_count: row.try_get("sent_count")?,
            received_count: row.try_get("received_count")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }

    /// The list's order key.
    fn sort_name(&self) -> String {
        self.name.to_lowercase()
    }

    /// What `search` looks in.
    fn search_text(&self) -> String {
        let mut s = self.name.to_lowercase();
        for part in [
            Some(self.phone.as_str()),
            self.email.as_deref(),
            self.company.as_deref(),
        ]
        .into_iter()
        .flatten()
        {
            s.push('\u{1f}');
            s.push_str(&part.to_lowercase());
        }
        s
    }

    /// Its labels: `(kind, label)`.
    fn labels(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.tags
            .iter()
            .map(|t| ("tag", t.as_str()))
            .chain(self.groups.iter().map(|g| ("group", g.as_str())))
    }
}

fn json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

/// Binds the [`INSERT_COLUMNS`] of `c`.
fn bind_insert<'q>(q: AnyQuery<'q>, c: &ContactRow) -> AnyQuery<'q> {
    q.bind(c.id.to_string())
        .bind(c.account_id.to_string())
        .bind(c.session_id.to_string())
        .bind(c.phone.clone())
        .bind(c.name.clone())
        .bind(c.sort_name())
        .bind(c.email.clone())
        .bind(c.company.clone())
        .bind(json(&c.tags))
        .bind(json(&c.groups))
        .bind(i64::from(c.is_opted_in))
        .bind(c.opt_in_at)
        .bind(c.opt_out_at)
        .bind(i64::from(c.is_blocked))
        .bind(json(&c.custom_fields))
        .bind(c.notes.clone())
        .bind(c.search_text())
        .bind(c.last_sent_at)
        .bind(c.last_received_at)
        .bind(c.sent_count)
        .bind(c.received_count)
        .bind(c.created_at)
        .bind(c.updated_at)
}

/// Changes of [`contact_counts`] rows, by `(session, kind, label, opted in)`, and the
/// sessions whose list changed (their generation moves on, see `SearchCache`).
#[derive(Default)]
struct Counts {
    deltas: std::collections::HashMap<(String, &'static str, String, i64), i64>,
    sessions: std::collections::BTreeSet<String>,
}

impl Counts {
    /// Counts `c` in (`sign` 1) or out (`sign` -1).
    fn add(&mut self, c: &ContactRow, sign: i64) {
        let session = c.session_id.to_string();
        self.sessions.insert(session.clone());
        let opt = i64::from(c.is_opted_in);
        *self
            .deltas
            .entry((session.clone(), "all", String::new(), opt))
            .or_default() += sign;
        for (kind, label) in c.labels() {
            *self
                .deltas
                .entry((session.clone(), kind, label.to_owned(), opt))
                .or_default() += sign;
        }
    }

    /// Applies the changes and moves the generation of every session touched.
    async fn apply(self, conn: &mut AnyConnection) -> Result<()> {
        let mut rows: Vec<_> = self.deltas.into_iter().filter(|(_, d)| *d != 0).collect();
        // One order for every writer: concurrent imports lock the same counter rows, and in
        // the map's (random) order two of them deadlock on PostgreSQL.
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        for chunk in rows.chunks(1000) {
            let mut p = Params::on(conn);
            let sql = format!(
                "INSERT INTO contact_counts (session_id, kind, label, is_opted_in, n) VALUES {} \
                 ON CONFLICT (session_id, kind, label, is_opted_in) \
                 DO UPDATE SET n = contact_counts.n + excluded.n",
                p.rows(chunk.len(), 5)
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for ((session, kind, label, opt), d) in chunk {
                q = q
                    .bind(session.clone())
                    .bind(*kind)
                    .bind(label.clone())
                    .bind(*opt)
                    .bind(*d);
            }
            q.execute(&mut *conn).await?;
        }
        for session in self.sessions {
            sqlx::query(
                "INSERT INTO contact_generations (session_id, generation) VALUES ($1, 1) \
                 ON CONFLICT (session_id) DO UPDATE \
                 SET generation = contact_generations.generation + 1",
            )
            .bind(session)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}

/// Writes every mutable column of `c` (which was `old`), rewrites its labels and moves the
/// counts.
async fn write_contact(conn: &mut AnyConnection, old: &ContactRow, c: &ContactRow) -> Result<()> {
    let seq: i64 = sqlx::query(
        "UPDATE contacts SET name = $1, sort_name = $2, email = $3, company = $4, tags = $5, \
         group_names = $6, is_opted_in = $7, opt_in_at = $8, opt_out_at = $9, is_blocked = $10, \
         custom_fields = $11, notes = $12, search = $13, updated_at = $14 \
         WHERE id = $15 AND account_id = $16 RETURNING seq",
    )
    .bind(c.name.clone())
    .bind(c.sort_name())
    .bind(c.email.clone())
    .bind(c.company.clone())
    .bind(json(&c.tags))
    .bind(json(&c.groups))
    .bind(i64::from(c.is_opted_in))
    .bind(c.opt_in_at)
    .bind(c.opt_out_at)
    .bind(i64::from(c.is_blocked))
    .bind(json(&c.custom_fields))
    .bind(c.notes.clone())
    .bind(c.search_text())
    .bind(c.updated_at)
    .bind(c.id.to_string())
    .bind(c.account_id.to_string())
    .fetch_one(&mut *conn)
    .await?
    .try_get("seq")?;
    sqlx::query("DELETE FROM contact_labels WHERE seq = $1")
        .bind(seq)
        .execute(&mut *conn)
        .await?;
    insert_labels(conn, &[(c, seq)]).await?;
    let mut counts = Counts::default();
    counts.add(old, -1);
    counts.add(c, 1);
    counts.apply(conn).await
}

/// The contacts of `account` with these ids, locked for the transaction on PostgreSQL.
async fn lock_contacts(
    conn: &mut AnyConnection,
    backend: Backend,
    account: AccountId,
    ids: &[ContactId],
) -> Result<Vec<ContactRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut p = Params::new(backend);
    let account_param = p.next();
    let list = p.list(ids.len());
    let lock = match backend {
        Backend::Sqlite => "",
        Backend::Postgres => " FOR UPDATE",
    };
    let sql = format!(
        "SELECT {COLUMNS} FROM contacts WHERE account_id = {account_param} AND id IN ({list}) \
         ORDER BY id{lock}"
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(account.to_string());
    for id in ids {
        q = q.bind(id.to_string());
    }
    q.fetch_all(&mut *conn)
        .await?
        .iter()
        .map(ContactRow::from_row)
        .collect()
}

impl Store {
    /// Stores a new contact; a contact of the session with the same phone is
    /// [`StoreError::Conflict`].
    pub async fn insert_contact(&self, c: &ContactRow) -> Result<()> {
        let mut tx = self.write.begin().await?;
        let sql = format!(
            "INSERT INTO contacts ({INSERT_COLUMNS}) VALUES ({}) RETURNING seq",
            Params::new(self.backend).list(INSERT_COUNT)
        );
        let seq: i64 = bind_insert(sqlx::query(sqlx::AssertSqlSafe(sql)), c)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| conflict_or(e, "contact phone"))?
            .try_get("seq")?;
        insert_labels(&mut tx, &[(c, seq)]).await?;
        let mut counts = Counts::default();
        counts.add(c, 1);
        counts.apply(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The contact `id` of `account`.
    pub async fn get_contact(
        &self,
        account: AccountId,
        id: ContactId,
    ) -> Result<Option<ContactRow>> {
        let sql = format!("SELECT {COLUMNS} FROM contacts WHERE id = $1 AND account_id = $2");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.to_string())
            .bind(account.to_string())
            .fetch_optional(&self.read)
            .await?
            .as_ref()
            .map(ContactRow::from_row)
            .transpose()
    }

    /// Applies `change` to the contact `id` of `account` and writes it, atomically; `None`
    /// when there is no such contact.
    pub async fn modify_contact<E: From<StoreError>>(
        &self,
        account: AccountId,
        id: ContactId,
        change: impl FnOnce(&mut ContactRow) -> std::result::Result<(), E>,
    ) -> std::result::Result<Option<ContactRow>, E> {
        let mut tx = self.write.begin().await.map_err(StoreError::from)?;
        let Some(mut row) = lock_contacts(&mut tx, self.backend, account, &[id])
            .await?
            .pop()
        else {
            return Ok(None);
        };
        let old = row.clone();
        change(&mut row)?;
        write_contact(&mut tx, &old, &row).await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(Some(row))
    }

    /// Applies `change` to each contact of `account` among `ids` in one transaction; a
    /// contact is written when `change` says it changed. Returns `(matched, modified)`.
    pub async fn modify_contacts(
        &self,
        account: AccountId,
        ids: &[ContactId],
        mut change: impl FnMut(&mut ContactRow) -> bool,
    ) -> Result<(i64, i64)> {
        let mut tx = self.write.begin().await?;
        let rows = lock_contacts(&mut tx, self.backend, account, ids).await?;
        let matched = rows.len() as i64;
        let mut modified = 0;
        for mut row in rows {
            let old = row.clone();
            if change(&mut row) {
                write_contact(&mut tx, &old, &row).await?;
                modified += 1;
            }
        }
        tx.commit().await?;
        Ok((matched, modified))
    }

    /// Deletes the contacts of `account` among `ids`; returns how many there were.
    pub async fn delete_contacts(&self, account: AccountId, ids: &[ContactId]) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut tx = self.write.begin().await?;
        let gone = lock_contacts(&mut tx, self.backend, account, ids).await?;
        let mut counts = Counts::default();
        for c in &gone {
            counts.add(c, -1);
        }
        counts.apply(&mut tx).await?;
        let mut p = Params::new(self.backend);
        let account_param = p.next();
        let list = p.list(ids.len());
        let bind_all = |sql: String| {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(account.to_string());
            for id in ids {
                q = q.bind(id.to_string());
            }
            q
        };
        bind_all(format!(
            "DELETE FROM contact_labels WHERE seq IN \
             (SELECT seq FROM contacts WHERE account_id = {account_param} AND id IN ({list}))"
        ))
        .execute(&mut *tx)
        .await?;
        let done = bind_all(format!(
            "DELETE FROM contacts WHERE account_id = {account_param} AND id IN ({list})"
        ))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    /// The session's groups with their counts, and the session's totals.
    pub async fn contact_groups(
        &self,
        account: AccountId,
        session: SessionId,
    ) -> Result<GroupSummary> {
        let owned: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM sessions WHERE id = $1 AND account_id = $2")
                .bind(session.to_string())
                .bind(account.to_string())
                .fetch_optional(&self.read)
                .await?;
        if owned.is_none() {
            return Ok(GroupSummary {
                groups: Vec::new(),
                total_contacts: 0,
                opted_in_contacts: 0,
            });
        }
        let rows = sqlx::query(
            "SELECT label, kind, CAST(SUM(n) AS BIGINT) AS total, \
             CAST(SUM(CASE WHEN is_opted_in = 1 THEN n ELSE 0 END) AS BIGINT) AS opted_in \
             FROM contact_counts WHERE session_id = $1 AND kind IN ('all', 'group') \
             GROUP BY kind, label HAVING SUM(n) > 0 ORDER BY kind, label",
        )
        .bind(session.to_string())
        .fetch_all(&self.read)
        .await?;
        let (mut total_contacts, mut opted_in_contacts) = (0, 0);
        let mut groups = Vec::new();
        for r in &rows {
            let kind: String = r.try_get("kind")?;
            let total: i64 = r.try_get("total")?;
            let opted_in: i64 = r.try_get("opted_in")?;
            if kind == "all" {
                (total_contacts, opted_in_contacts) = (total, opted_in);
            } else {
                groups.push(GroupCount {
                    name: r.try_get("label")?,
                    total,
                    opted_in,
                });
            }
        }
        Ok(GroupSummary {
            groups,
            total_contacts,
            opted_in_contacts,
        })
    }

    /// Applies `change` to every contact of the session in group `name`, in one
    /// transaction; returns how many were written.
    pub async fn modify_contact_group(
        &self,
        account: AccountId,
        session: SessionId,
        name: &str,
        mut change: impl FnMut(&mut ContactRow),
    ) -> Result<i64> {
        let mut tx = self.write.begin().await?;
        let ids: Vec<ContactId> = sqlx::query(
            "SELECT c.id AS contact_id FROM contact_labels l CROSS JOIN contacts c \
             WHERE l.label_id = (SELECT k.id FROM contact_label_keys k WHERE k.session_id = $1 \
             AND k.kind = 'group' AND k.label = $2) AND c.seq = l.seq",
        )
        .bind(session.to_string())
        .bind(name.to_owned())
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| {
            let id: String = r.try_get("contact_id")?;
            id.parse()
                .map_err(|_| StoreError::Corrupt("contact label id".into()))
        })
        .collect::<Result<_>>()?;
        let mut modified = 0;
        for chunk in ids.chunks(500) {
            for mut row in lock_contacts(&mut tx, self.backend, account, chunk).await? {
                let old = row.clone();
                change(&mut row);
                write_contact(&mut tx, &old, &row).await?;
                modified += 1;
            }
        }
        tx.commit().await?;
        Ok(modified)
    }

    /// The phones among `phones` (E.164) whose contact in the session has opted out.
    /// The bulk and broadcast paths skip them.
    pub async fn opted_out_phones(
        &self,
        account: AccountId,
        session: SessionId,
        phones: &[String],
    ) -> Result<HashSet<String>> {
        let mut out = HashSet::new();
        for chunk in phones.chunks(500) {
            let mut p = Params::new(self.backend);
            let (s, a) = (p.next(), p.next());
            let list = p.list(chunk.len());
            let sql = format!(
                "SELECT phone FROM contacts WHERE session_id = {s} AND account_id = {a} \
                 AND is_opted_in = 0 AND phone IN ({list})"
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(session.to_string())
                .bind(account.to_string());
            for phone in chunk {
                q = q.bind(phone.clone());
            }
            for row in q.fetch_all(&self.read).await? {
                out.insert(row.try_get("phone")?);
            }
        }
        Ok(out)
    }

    /// The business profile an emulator session keeps (Graph's field names).
    pub async fn business_profile(
        &self,
        account: AccountId,
        session: SessionId,
    ) -> Result<Option<serde_json::Value>> {
        let row: Option<String> = sqlx::query_scalar(
            "SELECT profile FROM business_profiles WHERE session_id = $1 AND account_id = $2",
        )
        .bind(session.to_string())
        .bind(account.to_string())
        .fetch_optional(&self.read)
        .await?;
        row.map(|p| {
            serde_json::from_str(&p).map_err(|_| StoreError::Corrupt("business profile".into()))
        })
        .transpose()
    }

    /// Merges `fields` into the session's stored business profile.
    pub async fn merge_business_profile(
        &self,
        account: AccountId,
        session: SessionId,
        fields: &serde_json::Map<String, serde_json::Value>,
        now: i64,
    ) -> Result<()> {
        let mut tx = self.write.begin().await?;
        let current: Option<String> = sqlx::query_scalar(
            "SELECT profile FROM business_profiles WHERE session_id = $1 AND account_id = $2",
        )
        .bind(session.to_string())
        .bind(account.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        let mut profile: serde_json::Map<String, serde_json::Value> = match current {
            Some(p) => serde_json::from_str(&p)
                .map_err(|_| StoreError::Corrupt("business profile".into()))?,
            None => serde_json::Map::new(),
        };
        profile.extend(fields.clone());
        sqlx::query(
            "INSERT INTO business_profiles (session_id, account_id, profile, updated_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (session_id) DO UPDATE SET \
             profile = excluded.profile, updated_at = excluded.updated_at",
        )
        .bind(session.to_string())
        .bind(account.to_string())
        .bind(serde_json::Value::Object(profile).to_string())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
