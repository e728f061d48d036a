//! Query plans that must not depend on statistics: a table just filled by a large broadcast
//! has none until it is analyzed (never, with autovacuum off), and the events of every
//! message, broadcast or not, look their recipient up.

use wharf_testkit::Backend;

use super::*;

/// Without statistics PostgreSQL once estimated a lookup of 200 message ids to match a third
/// of the recipients and scanned all of them for each batch of receipts: 670 messages/s at
/// 1M recipients. A message names its recipient, so the lookup goes through the two primary
/// keys (one row per id, statistics or not), and the recipients need no index of their own
/// on their message.
#[tokio::test]
async fn message_events_find_their_recipients_through_the_primary_keys_without_statistics() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(app) = TestApp::spawn(backend).await else {
            continue;
        };
        let session = setup(&app).await;
        let b = create(&app, &session, recipients(0, 1)).await;
        // A large broadcast, already sent, straight into the tables (no ANALYZE after it).
        let series = match backend {
            Backend::Postgres => "generate_series(1, 400000) AS s(g)",
            Backend::Sqlite => {
                "(WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < 400000) \
                 SELECT g FROM s) AS s"
            }
        };
        app.db()
            .execute(&format!(
                "INSERT INTO broadcast_recipients (broadcast_id, seq, phone, status, message_id) \
                 SELECT '{}', g + 1, '+1555' || g, 'sent', 'msg_' || g FROM {series}",
                b.id
            ))
            .await;
        app.db()
            .execute(&format!(
                "INSERT INTO messages (id, account_id, session_id, direction, chat_jid, kind, content, \
                 status, accepted_at, updated_at, broadcast_id, broadcast_seq) \
                 SELECT 'msg_' || g, b.account_id, b.session_id, 'out', '1555' || g || '@s.whatsapp.net', \
                 'text', '{{}}', 'sent', 0, 0, b.id, g + 1 FROM {series}, broadcasts b WHERE b.id = '{}'",
                b.id
            ))
            .await;
        let ids: Vec<String> = (0..200).map(|i| format!("'msg_{i}'")).collect();
        let plan = app
            .db()
            .plan(&format!(
                "SELECT r.broadcast_id, r.seq, r.status, m.id AS message_id FROM messages m \
                 JOIN broadcast_recipients r ON r.broadcast_id = m.broadcast_id AND r.seq = m.broadcast_seq \
                 WHERE m.id IN ({}) AND m.broadcast_id IS NOT NULL",
                ids.join(", ")
            ))
            .await;
        let (messages, recipients, scan) = match backend {
            Backend::Postgres => ("messages_pkey", "broadcast_recipients_pkey", "Seq Scan"),
            Backend::Sqlite => (
                "sqlite_autoindex_messages_1",
                "sqlite_autoindex_broadcast_recipients_1",
                "SCAN ",
            ),
        };
        assert!(
            plan.contains(messages) && plan.contains(recipients) && !plan.contains(scan),
            "{backend:?} does not go through both primary keys:\n{plan}"
        );
    }
}
