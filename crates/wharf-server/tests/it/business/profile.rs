//! The business profile: stored on the emulator, through Graph on cloud sessions, with the
//! seed's limits checked first on both.

use serde_json::json;
use wharf_server::http::business::{MessageAnswer, profile::BusinessProfileAnswer};
use wharf_testkit::fakegraph::FakeNumber;

use super::*;

const PNID: &str = "106540352242922";

/// Each limit of the seed is a 400 naming its field.
async fn assert_limits(app: &TestApp, account: &str) {
    for (body, field) in [
        (json!({"about": "a".repeat(140)}), "about"),
        (json!({"description": "d".repeat(513)}), "description"),
        (
            json!({"websites": ["https://a.example", "https://b.example", "https://c.example"]}),
            "websites",
        ),
        (json!({"websites": ["ftp://a.example"]}), "websites[0]"),
        (json!({"vertical": "SHOPS"}), "vertical"),
        (json!({"email": "nope"}), "email"),
        (json!({"address": "x".repeat(257)}), "address"),
        (json!({"websites": "https://a.example"}), "websites"),
    ] {
        let mut body = body;
        body["accountId"] = json!(account);
        let answer = app
            .post("/v1/whatsapp/business-profile")
            .json(body)
            .expect(400)
            .await;
        zernio_error(&answer, "invalid_field_value", Some(field));
    }
}

#[wharf_testkit::dual_test]
async fn the_emulator_keeps_its_profile(app: TestApp) {
    let account = account(&app).await;
    let empty: BusinessProfileAnswer = app
        .get(&format!(
            "/v1/whatsapp/business-profile?accountId={account}"
        ))
        .expect_view(200)
        .await;
    assert_eq!(empty.business_profile.about, None);
    assert!(empty.business_profile.websites.is_empty());

    let updated: MessageAnswer = app
        .post("/api/v1/whatsapp/business-profile")
        .json(json!({"accountId": account, "about": "a".repeat(139),
                     "description": "Premium business solutions", "email": "hello@example.com",
                     "websites": ["https://example.com"], "vertical": "RETAIL"}))
        .expect_view(200)
        .await;
    assert_eq!(updated.message, "Business profile updated successfully");
    app.post("/v1/whatsapp/business-profile")
        .json(json!({"accountId": account, "address": "1 Main St"}))
        .expect(200)
        .await;
    let got: BusinessProfileAnswer = app
        .get(&format!(
            "/v1/whatsapp/business-profile?accountId={account}"
        ))
        .expect_view(200)
        .await;
    let p = got.business_profile;
    assert_eq!(p.about.as_deref().map(|a| a.chars().count()), Some(139));
    assert_eq!(p.address.as_deref(), Some("1 Main St"), "fields merge");
    assert_eq!(p.email.as_deref(), Some("hello@example.com"));
    assert_eq!(p.websites, vec!["https://example.com"]);
    assert_eq!(p.vertical.as_deref(), Some("RETAIL"));

    assert_limits(&app, &account).await;
    let picture = app
        .post("/v1/whatsapp/business-profile")
        .json(json!({"accountId": account, "profilePictureHandle": "4::aW1h"}))
        .expect(400)
        .await;
    zernio_error(
        &picture,
        "invalid_field_value",
        Some("profilePictureHandle"),
    );
    let after: BusinessProfileAnswer = app
        .get(&format!(
            "/v1/whatsapp/business-profile?accountId={account}"
        ))
        .expect_view(200)
        .await;
    assert_eq!(
        after.business_profile.vertical.as_deref(),
        Some("RETAIL"),
        "nothing half-written"
    );

    let (_, intruder) = app.store.create_account("intruder").await.unwrap();
    let foreign = app
        .get(&format!(
            "/v1/whatsapp/business-profile?accountId={account}"
        ))
        .token(&intruder.raw)
        .expect(404)
        .await;
    assert_eq!(
        zernio_error(&foreign, "not_found", Some("accountId")),
        "WhatsApp account not found"
    );
    let missing = app.get("/v1/whatsapp/business-profile").expect(400).await;
    zernio_error(&missing, "invalid_field_value", Some("accountId"));
}

#[wharf_testkit::dual_test]
async fn a_cloud_profile_goes_through_graph(app: TestApp) {
    let graph = app.graph().clone();
    let cloud = app
        .cloud_session(
            &graph,
            FakeNumber::new(PNID, "102290129340398", "15550783881"),
            json!({}),
        )
        .await;
    let account = cloud.session.clone();
    app.post("/v1/whatsapp/business-profile")
        .json(
            json!({"accountId": account, "about": "We help businesses grow",
                     "description": "Premium business solutions", "email": "hello@example.com",
                     "websites": ["https://example.com", "https://example.org"],
                     "vertical": "PROF_SERVICES", "profilePictureHandle": "4::aW1hZ2U="}),
        )
        .expect(200)
        .await;
    let at_meta = graph.profile(PNID);
    assert_eq!(at_meta["about"], "We help businesses grow");
    assert_eq!(at_meta["vertical"], "PROF_SERVICES");
    let got: BusinessProfileAnswer = app
        .get(&format!(
            "/v1/whatsapp/business-profile?accountId={account}"
        ))
        .expect_view(200)
        .await;
    let p = got.business_profile;
    assert_eq!(p.description.as_deref(), Some("Premium business solutions"));
    assert_eq!(
        p.websites,
        vec!["https://example.com", "https://example.org"]
    );
    assert!(
        p.profile_picture_url.is_some(),
        "Meta shows the uploaded picture"
    );

    // Limits are checked before Graph is called.
    let calls = graph.requests().len();
    assert_limits(&app, &account).await;
    assert_eq!(
        graph.requests().len(),
        calls,
        "nothing invalid reached Graph"
    );
    graph.assert_no_rejections();
}
