//! Received poll votes are stored with the names of the options chosen, taken from the poll
//! they answer (the web engine decrypts them; see `web/convert/tests.rs`).

use serde_json::json;
use wharf_core::{
    Jid,
    message::{Content, Inbound},
};
use wharf_testkit::TestApp;
use whatsapp_rust::wacore::poll::compute_option_hash;

const TO: &str = "+15550102030";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn vote(id: &str, poll: &str, chosen: &[&str]) -> Inbound {
    let peer = Jid::parse("15550102030@s.whatsapp.net").unwrap();
    Inbound {
        provider_id: id.into(),
        chat: peer.clone(),
        sender: peer,
        chat_lid: None,
        sender_lid: None,
        content: Content::PollVote {
            target: None,
            target_provider_id: poll.into(),
            options: Vec::new(),
            option_hashes: chosen
                .iter()
                .map(|o| hex(&compute_option_hash(o)))
                .collect(),
        },
        sent_at: 1_700_000_000_000,
        quoted_provider_id: None,
    }
}

#[wharf_testkit::dual_test]
async fn votes_are_named_from_the_poll_they_answer(mut app: TestApp) {
    let (s, _) = app.connected_session().await;
    let injected = app
        .post(&format!("/emulator/sessions/{s}/inbound"))
        .json(json!({"from": TO, "kind": "poll",
            "poll": {"question": "Lunch?", "options": ["Tea", "Cake", "Soup"], "multiSelect": true}}))
        .expect(202)
        .await;
    let poll = injected["provider_msg_id"].as_str().unwrap().to_owned();
    let logs = app
        .eventually(
            &format!("/api/whatsapp-sessions/{s}/message-logs?direction=in"),
            |l| l["data"].as_array().is_some_and(|d| !d.is_empty()),
        )
        .await;
    let poll_message = logs["data"][0]["message_id"].as_str().unwrap().to_owned();

    let account = app.account_id.parse().unwrap();
    let session = s.parse().unwrap();
    let rows = app
        .store
        .ingest_inbound(
            account,
            session,
            &[
                vote("3EB0V1", &poll, &["Cake", "Soup", "Pie"]),
                vote("3EB0V2", "3EB0ELSEWHERE", &["Tea"]),
            ],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    let Content::PollVote {
        target,
        options,
        option_hashes,
        ..
    } = &rows[0].content
    else {
        panic!("{:?}", rows[0].content);
    };
    assert_eq!(target.as_ref().map(ToString::to_string), Some(poll_message));
    assert_eq!(options, &["Cake", "Soup"]);
    assert_eq!(
        option_hashes,
        &[hex(&compute_option_hash("Pie"))],
        "no such option"
    );
    let Content::PollVote {
        target: None,
        options,
        option_hashes,
        ..
    } = &rows[1].content
    else {
        panic!("{:?}", rows[1].content);
    };
    assert!(options.is_empty(), "an unknown poll names nothing");
    assert_eq!(option_hashes.len(), 1);

    // As the API shows it.
    let logs = app
        .get(&format!(
            "/api/whatsapp-sessions/{s}/message-logs?direction=in"
        ))
        .expect(200)
        .await;
    let shown = logs["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["kind"] == "poll_vote" && m["content"]["target_provider_id"] == poll.as_str())
        .unwrap_or_else(|| panic!("{logs}"));
    assert_eq!(shown["content"]["options"], json!(["Cake", "Soup"]));
    app.stop().await;
}
