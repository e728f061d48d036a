//! The contacts that messages touch: inbound senders become (or update) contacts, and the
//! contacts messages went out to count their sends, inside the transactions that store the
//! messages.

use std::collections::BTreeMap;

use sqlx::AnyConnection;
use wharf_core::{AccountId, ContactId, SessionId, message::Direction};

use super::{ContactRow, Counts, INSERT_COLUMNS, INSERT_COUNT, bind_insert};
use crate::{MessageRow, Params, Result};

/// Creates or updates the contact of each direct-chat sender of these inbound messages
/// (inside the transaction that stores them): a new sender becomes a contact named by its
/// number, opted in; a known one gets its received count and time moved on. Only messages
/// owned by `account`, the session's own: sandbox traffic routed to a developer's account
/// makes no contact in the sandbox number's list.
pub(crate) async fn touch_inbound(
    conn: &mut AnyConnection,
    account: AccountId,
    rows: &[MessageRow],
) -> Result<()> {
    for m in rows {
        if m.direction != Direction::In || m.account_id != account {
            continue;
        }
        let Some(phone) = m.chat_jid.phone() else {
            continue;
        };
        if m.sender_jid.as_deref() != Some(m.chat_jid.to_string().as_str()) {
            continue;
        }
        let at = m.sent_at.unwrap_or(m.accepted_at);
        let contact = ContactRow {
            id: ContactId::generate(),
            account_id: m.account_id,
            session_id: m.session_id,
            phone: phone.e164().to_owned(),
            name: phone.e164().to_owned(),
            email: None,
            company: None,
            tags: Vec::new(),
            groups: Vec::new(),
            is_opted_in: true,
            opt_in_at: Some(m.accepted_at),
            opt_out_at: None,
            is_blocked: false,
            custom_fields: BTreeMap::new(),
            notes: None,
            last_sent_at: None,
            last_received_at: Some(at),
            sent_count: 0,
            received_count: 1,
            created_at: m.accepted_at,
            updated_at: m.accepted_at,
        };
        let sql = format!(
            "INSERT INTO contacts ({INSERT_COLUMNS}) VALUES ({}) \
             ON CONFLICT (session_id, phone) DO NOTHING",
            Params::on(conn).list(INSERT_COUNT)
        );
        let inserted = bind_insert(sqlx::query(sqlx::AssertSqlSafe(sql)), &contact)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        if inserted == 1 {
            let mut counts = Counts::default();
            counts.add(&contact, 1);
            counts.apply(conn).await?;
        } else {
            sqlx::query(
                "UPDATE contacts SET received_count = received_count + 1, \
                 last_received_at = CASE WHEN last_received_at IS NULL OR last_received_at < $1 \
                    THEN $1 ELSE last_received_at END, updated_at = $2 \
                 WHERE session_id = $3 AND phone = $4",
            )
            .bind(at)
            .bind(m.accepted_at)
            .bind(m.session_id.to_string())
            .bind(contact.phone.clone())
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}

/// Moves on the sent count and time of the contacts that messages went out to (inside the
/// transaction that records the sends): `(account, session, phone in E.164, sent at)` per
/// message. Only the contact of the message's account in the session's list counts it; a
/// number without a contact gets none.
pub(crate) async fn touch_outbound(
    conn: &mut AnyConnection,
    sends: &[(AccountId, SessionId, String, i64)],
) -> Result<()> {
    // Per contact: how many, and the latest time.
    let mut per: BTreeMap<(AccountId, SessionId, &str), (i64, i64)> = BTreeMap::new();
    for (account, session, phone, at) in sends {
        let e = per.entry((*account, *session, phone)).or_insert((0, *at));
        e.0 += 1;
        e.1 = e.1.max(*at);
    }
    let per: Vec<_> = per.into_iter().collect();
    for chunk in per.chunks(100) {
        let values = Params::on(conn).rows(chunk.len(), 5);
        let sql = format!(
            "UPDATE contacts SET sent_count = contacts.sent_count + CAST(v.column4 AS BIGINT), \
             last_sent_at = CASE WHEN contacts.last_sent_at IS NULL \
                OR contacts.last_sent_at < CAST(v.column5 AS BIGINT) \
                THEN CAST(v.column5 AS BIGINT) ELSE contacts.last_sent_at END, \
             updated_at = CASE WHEN contacts.updated_at < CAST(v.column5 AS BIGINT) \
                THEN CAST(v.column5 AS BIGINT) ELSE contacts.updated_at END \
             FROM (VALUES {values}) AS v \
             WHERE contacts.session_id = v.column2 AND contacts.phone = v.column3 \
               AND contacts.account_id = v.column1"
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
        for ((account, session, phone), (n, at)) in chunk {
            q = q
                .bind(account.to_string())
                .bind(session.to_string())
                .bind(phone.to_string())
                .bind(n.to_string())
                .bind(at.to_string());
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}
