//! The Zernio dialect: `/v1/whatsapp/sandbox/sessions` (and under `/api`).

use serde_json::json;

use super::*;

dual_test! {
    async fn a_phone_activates_by_replying_and_then_receives_sends(app) {
        let (number, number_phone) = emulator_number(&app).await;
        let created = app
            .post("/v1/whatsapp/sandbox/sessions")
            .json(json!({"phone": "+34 688-246 216"}))
            .expect(200)
            .await;
        assert_eq!(created["sandboxNumber"], number_phone.as_str());
        let session = &created["session"];
        assert_eq!(session["phoneE164"], DEV_DIGITS);
        assert_eq!(session["status"], "pending");
        assert!(session["activatedAt"].is_null());
        let id = session["id"].as_str().expect("id").to_owned();
        // The verification message went out from the sandbox number.
        let sent = wait_events(&app, &app.pat, "message.sent").await;
        assert_eq!(sent[0]["data"]["chat_jid"], format!("{DEV_DIGITS}@s.whatsapp.net"));

        // Not activated yet: sending through the sandbox is refused before queueing.
        let refused = app
            .post("/api/send-message")
            .json(json!({"session_id": "sandbox", "to": DEV_PHONE, "text": "hi"}))
            .expect(422)
            .await;
        assert_eq!(refused["reason_code"], "sandbox_recipient_not_activated");
        assert!(refused["errors"]["to"].is_array());

        phone_writes(&app, &number, DEV_PHONE, "yes it's me").await;
        let activated = wait_events(&app, &app.pat, "sandbox.activated").await;
        assert_eq!(activated[0]["data"]["sandbox_session_id"], id.as_str());
        let listed = app.get("/api/v1/whatsapp/sandbox/sessions").expect(200).await;
        assert_eq!(listed["sessions"][0]["status"], "active");
        assert!(listed["sessions"][0]["activatedAt"].is_string());

        let sent = app
            .post("/api/send-message")
            .json(json!({"session_id": "sandbox", "to": DEV_PHONE, "text": "hello from the sandbox"}))
            .expect(202)
            .await;
        let message = sent["message_id"].as_str().expect("message_id");
        let info = app.wait_status(message, "sent").await;
        assert_eq!(info["status"], "sent");
    }
}
