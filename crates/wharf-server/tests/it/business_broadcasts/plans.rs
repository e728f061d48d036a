//! Query plans that must not depend on statistics: a table just filled by a large broadcast
//! has none until it is analyzed (never, with autovacuum off), and the receipts of every
//! message, broadcast or not, look their recipient up by message id.

use wharf_testkit::Backend;

use super::*;

/// Without statistics PostgreSQL estimated a lookup of 200 message ids to match a third of
/// the table and scanned all of it for each batch of receipts: 670 messages/s at 1M
/// recipients. The index is unique (a message is one recipient's), so the estimate is one
/// row per id, statistics or not.
#[tokio::test]
async fn receipts_find_their_recipients_through_the_index_without_statistics() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(app) = TestApp::spawn(backend).await else {
            continue;
        };
        let session = setup(&app).await;
        let b = create(&app, &session, recipients(0, 1)).await;
        // A large broadcast, already sent, straight into the table (no ANALYZE after it).
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
        let ids: Vec<String> = (0..200).map(|i| format!("'msg_{i}'")).collect();
        let plan = app
            .db()
            .plan(&format!(
                "SELECT broadcast_id, seq, status, message_id FROM broadcast_recipients \
                 WHERE message_id IN ({})",
                ids.join(", ")
            ))
            .await;
        assert!(
            plan.contains("broadcast_recipients_by_message"),
            "{backend:?} reads the whole table:\n{plan}"
        );
    }
}
