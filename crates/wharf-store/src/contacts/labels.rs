//! A contact's label rows (`contact_labels`): one per tag and group, in name order within
//! its label, which is numbered once per session in `contact_label_keys` (migration 0035).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use sqlx::{AnyConnection, Row};

use super::ContactRow;
use crate::{Params, Result, StoreError};

/// Inserts the label rows of `contacts` (none of which has any yet), each with its
/// contact's `seq`.
pub(super) async fn insert_labels(
    conn: &mut AnyConnection,
    contacts: &[(&ContactRow, i64)],
) -> Result<()> {
    let wanted: BTreeSet<LabelKey> = contacts
        .iter()
        .flat_map(|(c, _)| {
            c.labels()
                .map(|(k, l)| (c.session_id.to_string(), k, l.to_owned()))
        })
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let ids = label_ids(conn, wanted).await?;
    let mut rows: Vec<(i64, String, i64, i64)> = Vec::new();
    for (c, seq) in contacts {
        let session = c.session_id.to_string();
        let sort_name = c.sort_name();
        for (kind, label) in c.labels() {
            let id = ids
                .get(&(session.clone(), kind, label.to_owned()))
                .ok_or_else(|| StoreError::Corrupt(format!("no number for {kind} {label}")))?;
            rows.push((*id, sort_name.clone(), *seq, i64::from(c.is_opted_in)));
        }
    }
    for chunk in rows.chunks(4000) {
        let mut p = Params::on(conn);
        let sql = format!(
            "INSERT INTO contact_labels (label_id, sort_name, seq, is_opted_in) VALUES {} \
             ON CONFLICT DO NOTHING",
            p.rows(chunk.len(), 4)
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (id, sort_name, seq, opted_in) in chunk {
            q = q
                .bind(*id)
                .bind(sort_name.clone())
                .bind(*seq)
                .bind(*opted_in);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// A label of a session: `(session, kind, label)`.
type LabelKey = (String, &'static str, String);

/// The numbers of these labels (`contact_label_keys`), numbering those that have none yet.
async fn label_ids(
    conn: &mut AnyConnection,
    wanted: BTreeSet<LabelKey>,
) -> Result<HashMap<LabelKey, i64>> {
    let mut ids = read_label_ids(conn, &wanted).await?;
    let missing: Vec<&LabelKey> = wanted.iter().filter(|k| !ids.contains_key(*k)).collect();
    if missing.is_empty() {
        return Ok(ids);
    }
    for chunk in missing.chunks(1000) {
        let mut p = Params::on(conn);
        // Another writer may number one first (PostgreSQL): then this one is left alone, and
        // the read below finds the other's, committed by then.
        let sql = format!(
            "INSERT INTO contact_label_keys (session_id, kind, label) VALUES {} \
             ON CONFLICT (session_id, kind, label) DO NOTHING",
            p.rows(chunk.len(), 3)
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (session, kind, label) in chunk {
            q = q.bind(session.clone()).bind(*kind).bind(label.clone());
        }
        q.execute(&mut *conn).await?;
    }
    let missing: BTreeSet<LabelKey> = missing.into_iter().cloned().collect();
    ids.extend(read_label_ids(conn, &missing).await?);
    Ok(ids)
}

/// The numbers of those of `wanted` that have one.
async fn read_label_ids(
    conn: &mut AnyConnection,
    wanted: &BTreeSet<LabelKey>,
) -> Result<HashMap<LabelKey, i64>> {
    // One statement per session and kind (usually one session and two kinds).
    let mut groups: BTreeMap<(&str, &'static str), Vec<&str>> = BTreeMap::new();
    for (session, kind, label) in wanted {
        groups.entry((session, kind)).or_default().push(label);
    }
    let mut ids = HashMap::new();
    for ((session, kind), labels) in groups {
        for chunk in labels.chunks(1000) {
            let mut p = Params::on(conn);
            let sql = format!(
                "SELECT id, label FROM contact_label_keys WHERE session_id = {} AND kind = {} \
                 AND label IN ({})",
                p.next(),
                p.next(),
                p.list(chunk.len())
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(session.to_owned())
                .bind(kind);
            for label in chunk {
                q = q.bind(label.to_string());
            }
            for row in q.fetch_all(&mut *conn).await? {
                let label: String = row.try_get("label")?;
                ids.insert((session.to_owned(), kind, label), row.try_get("id")?);
            }
        }
    }
    Ok(ids)
}
