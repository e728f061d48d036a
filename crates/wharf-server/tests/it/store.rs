//! The store under the API: what the group commit of sends guarantees when a request in a
//! group is bad.

use wharf_core::{MessageId, SessionId};
use wharf_store::{JobAction, OutboxJob};

dual_test! {
    async fn a_bad_send_in_a_group_commit_fails_alone(app) {
        // A session that is not connected keeps its outbox, so the jobs can be counted.
        let created = app.create_session(serde_json::json!({})).await;
        let session: SessionId = created["session"]["session_id"].as_str().unwrap().parse().unwrap();
        let first: MessageId = app
            .send_text(&session.to_string(), "+15550102030", "first")
            .await
            .parse()
            .unwrap();
        let template = app
            .store
            .get_message(app.account_id.parse().unwrap(), first)
            .await
            .unwrap()
            .expect("the first message");
        let job = |m: &wharf_store::MessageRow| {
            OutboxJob::new(m.account_id, session, m.chat_jid.clone(), Some(m.id), JobAction::Send, serde_json::Value::Null)
        };
        // Many sends at once, so they share group commits; one reuses the first's id.
        let mut rows = Vec::new();
        for i in 0..40 {
            let mut m = template.clone();
            if i != 20 {
                m.id = MessageId::generate();
                m.provider_msg_id = Some(format!("3EB0{i:020X}"));
            }
            rows.push(m);
        }
        let results = futures::future::join_all(rows.iter().map(|m| {
            let store = app.store.clone();
            let job = job(m);
            let m = m.clone();
            async move { store.accept_outgoing(&m, &job, None).await }
        }))
        .await;
        for (i, result) in results.iter().enumerate() {
            assert_eq!(result.is_ok(), i != 20, "send {i}: {result:?}");
        }
        for (i, m) in rows.iter().enumerate() {
            if i != 20 {
                let stored = app.store.get_message(m.account_id, m.id).await.unwrap();
                assert!(stored.is_some(), "send {i} was committed");
            }
        }
        assert_eq!(app.store.outbox_len(session).await.unwrap(), 40, "the first and 39 good ones: one job each");
        // The writer is usable afterwards (no transaction was left open).
        app.send_text(&session.to_string(), "+15550102030", "after").await;
        assert_eq!(app.store.outbox_len(session).await.unwrap(), 41);
    }
}
