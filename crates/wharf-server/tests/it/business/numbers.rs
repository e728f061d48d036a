//! Phone numbers: the operator's pool and the account's quota, Telnyx (against the test
//! kit's fake) and Meta's registration of a number (against the fake Graph server).

use std::collections::BTreeSet;

use serde_json::json;
use wharf_server::http::business::numbers::{
    ZAvailableList, ZCodeAnswer, ZNumberAnswer, ZNumberList, ZPreverified, ZPurchaseAnswer,
    ZReleaseAnswer, ZVerifyAnswer,
};
use wharf_store::PoolNumberRow;
use wharf_testkit::{
    Backend, FakeTelnyx, TELNYX_KEY,
    fakegraph::{Failure, FakeNumber},
};

use super::*;

const NUMBERS: &str = "/v1/whatsapp/phone-numbers";

async fn add_to_pool(app: &TestApp, phone: &str, locality: &str, meta: Option<&str>) {
    app.store
        .add_pool_number(&PoolNumberRow {
            phone_number: phone.into(),
            country: "US".into(),
            area_code: Some(phone[2..5].into()),
            locality: Some(locality.into()),
            meta_preverified_id: meta.map(str::to_owned),
            assigned_to: None,
            created_at: wharf_core::time::now_millis(),
        })
        .await
        .unwrap();
}

async fn available(app: &TestApp, query: &str) -> Vec<String> {
    let list: ZAvailableList = app
        .get(&format!("{NUMBERS}/available{query}"))
        .expect_view(200)
        .await;
    list.numbers.into_iter().map(|n| n.phone_number).collect()
}

async fn purchase(app: &TestApp, profile: &str) -> ZPurchaseAnswer {
    app.post(&format!("{NUMBERS}/purchase"))
        .json(json!({"profileId": profile}))
        .expect_view(200)
        .await
}

/// A 400 of this dialect with `code`; returns its message.
async fn refused(call: wharf_testkit::Call<'_>, code: &str, param: Option<&str>) -> String {
    let body = call.expect(400).await;
    zernio_error(&body, code, param)
}

#[wharf_testkit::dual_test(|c: &mut wharf_testkit::Config| c.phone_number_quota = 2)]
async fn the_pool_serves_purchases_within_the_quota(app: TestApp) {
    add_to_pool(&app, "+12125550101", "New York", Some("106540000000001")).await;
    add_to_pool(&app, "+12125550102", "New York", None).await;
    add_to_pool(&app, "+13105550103", "Los Angeles", None).await;

    // Searches with the seed's filters.
    assert_eq!(available(&app, "").await.len(), 3);
    assert_eq!(
        available(&app, "?prefix=212").await,
        ["+12125550101", "+12125550102"]
    );
    assert_eq!(
        available(&app, "?locality=los%20angeles").await,
        ["+13105550103"]
    );
    assert_eq!(available(&app, "?contains=0102").await, ["+12125550102"]);
    assert_eq!(available(&app, "?limit=1").await, ["+12125550101"]);
    assert_eq!(available(&app, "?prefix=212&contains=0103").await.len(), 0);
    // Zernio's newer SDKs send `country` and `areaCode` (Wharf's extensions).
    assert_eq!(available(&app, "?country=us&limit=20").await.len(), 3);
    assert!(available(&app, "?country=GB").await.is_empty());
    assert_eq!(available(&app, "?areaCode=310").await, ["+13105550103"]);
    let listed: ZAvailableList = app
        .get(&format!("/api{NUMBERS}/available?limit=100"))
        .expect_view(200)
        .await;
    assert!(listed.numbers.iter().all(|n| n.source == "pool"));
    assert_eq!(listed.numbers[0].area_code.as_deref(), Some("212"));
    for (query, field) in [
        ("?limit=101", "limit"),
        ("?limit=0", "limit"),
        ("?limit=ten", "limit"),
        ("?prefix=2a2", "prefix"),
        ("?contains=55-01", "contains"),
        ("?country=USA", "country"),
    ] {
        let call = app.get(&format!("{NUMBERS}/available{query}"));
        refused(call, "invalid_field_value", Some(field)).await;
    }

    // Purchase: profileId is required; the oldest available number is assigned inline.
    let call = app.post(&format!("{NUMBERS}/purchase")).json(json!({}));
    refused(call, "invalid_field_value", Some("profileId")).await;
    let call = app
        .post(&format!("{NUMBERS}/purchase"))
        .json(json!({"profileId": 7}));
    refused(call, "invalid_field_value", Some("profileId")).await;
    refused(
        app.post(&format!("{NUMBERS}/purchase"))
            .json(json!({"profileId": "acme", "country": "GB"})),
        "no_numbers_available",
        None,
    )
    .await;
    let bought = purchase(&app, "acme").await;
    let first = bought.phone_number;
    assert_eq!(first.phone_number, "+12125550101");
    assert_eq!(first.status, "active");
    assert_eq!(first.country, "US");
    assert_eq!(
        first.meta_preverified_id.as_deref(),
        Some("106540000000001")
    );
    assert_eq!(first.meta_verification_status.as_deref(), Some("pending"));
    assert!(first.provisioned_at.is_some());
    assert!(first.id.starts_with("pn_"));
    assert_eq!(
        available(&app, "?prefix=212").await,
        ["+12125550102"],
        "a held number is no longer available"
    );

    // The list, its filters, one number.
    let list: ZNumberList = app.get(NUMBERS).expect_view(200).await;
    assert_eq!(list.numbers.len(), 1);
    assert_eq!(list.numbers[0].id, first.id);
    assert_eq!(list.numbers[0].profile_id.as_deref(), Some("acme"));
    let other: ZNumberList = app
        .get(&format!("{NUMBERS}?profileId=other"))
        .expect_view(200)
        .await;
    assert!(other.numbers.is_empty());
    let active: ZNumberList = app
        .get(&format!("/api{NUMBERS}?status=active&profileId=acme"))
        .expect_view(200)
        .await;
    assert_eq!(active.numbers.len(), 1);
    let call = app.get(&format!("{NUMBERS}?status=pending_payment"));
    refused(call, "invalid_field_value", Some("status")).await;
    let one: ZNumberAnswer = app
        .get(&format!("{NUMBERS}/{}", first.id))
        .expect_view(200)
        .await;
    assert_eq!(one.phone_number.phone_number, "+12125550101");

    // Unknown, malformed and another account's ids are the same 404.
    let (_, intruder) = app.store.create_account("intruder").await.unwrap();
    for (path, token) in [
        (
            format!("{NUMBERS}/pn_00000000000000000000000000"),
            app.pat.clone(),
        ),
        (format!("{NUMBERS}/nope"), app.pat.clone()),
        (format!("{NUMBERS}/{}", first.id), intruder.raw.clone()),
    ] {
        let answer = app.get(&path).token(&token).expect(404).await;
        assert_eq!(
            zernio_error(&answer, "not_found", None),
            "Phone number not found"
        );
        let answer = app.delete(&path).token(&token).expect(404).await;
        zernio_error(&answer, "not_found", None);
        let call = app
            .post(&format!("{path}/request-code"))
            .token(&token)
            .json(json!({}));
        let answer = call.expect(404).await;
        zernio_error(&answer, "not_found", None);
    }
    let theirs: ZNumberList = app.get(NUMBERS).token(&intruder.raw).expect_view(200).await;
    assert!(theirs.numbers.is_empty(), "numbers are the account's own");

    // The quota: two numbers, then 400.
    purchase(&app, "acme").await;
    let message = refused(
        app.post(&format!("{NUMBERS}/purchase"))
            .json(json!({"profileId": "acme"})),
        "plan_limit_reached",
        None,
    )
    .await;
    assert!(message.contains("limit"), "{message}");

    // Release: back to the pool, listed only as released; a second release is refused.
    let released: ZReleaseAnswer = app
        .delete(&format!("/api{NUMBERS}/{}", first.id))
        .expect_view(200)
        .await;
    assert_eq!(released.phone_number.status, "released");
    assert!(released.phone_number.released_at.is_some());
    refused(
        app.delete(&format!("{NUMBERS}/{}", first.id)),
        "already_released",
        None,
    )
    .await;
    let list: ZNumberList = app.get(NUMBERS).expect_view(200).await;
    assert_eq!(list.numbers.len(), 1, "released numbers are left out");
    let gone: ZNumberList = app
        .get(&format!("{NUMBERS}?status=released"))
        .expect_view(200)
        .await;
    assert_eq!(gone.numbers.len(), 1);
    assert_eq!(gone.numbers[0].status, "released");
    assert!(
        available(&app, "")
            .await
            .contains(&"+12125550101".to_owned())
    );
    let pool = app.store.pool_numbers().await.unwrap();
    assert!(
        pool.iter()
            .find(|n| n.phone_number == "+12125550101")
            .unwrap()
            .assigned_to
            .is_none()
    );
    // The quota counts held numbers: one was released, so one more can be bought.
    purchase(&app, "acme").await;

    // preverified needs profileId; nothing is verified yet.
    refused(
        app.get(&format!("{NUMBERS}/preverified")),
        "invalid_field_value",
        Some("profileId"),
    )
    .await;
    let pre: ZPreverified = app
        .get(&format!("{NUMBERS}/preverified?profileId=acme"))
        .expect_view(200)
        .await;
    assert!(pre.pre_verified_ids.is_empty() && pre.numbers.is_empty());
}

#[wharf_testkit::dual_test(|c: &mut wharf_testkit::Config| c.phone_number_quota = 3)]
async fn concurrent_purchases_never_share_a_number(app: TestApp) {
    for n in 0..5 {
        add_to_pool(&app, &format!("+1646555{n:04}"), "New York", None).await;
    }
    let (_, other) = app.store.create_account("other").await.unwrap();
    let mut calls = Vec::new();
    for i in 0..16 {
        let token = if i % 2 == 0 {
            app.pat.clone()
        } else {
            other.raw.clone()
        };
        let app = &app;
        calls.push(async move {
            let answer = app
                .post(&format!("{NUMBERS}/purchase"))
                .token(&token)
                .json(json!({"profileId": "p"}))
                .send()
                .await;
            (token, answer)
        });
    }
    let answers = futures::future::join_all(calls).await;
    let mut numbers = BTreeSet::new();
    let mut per_account = std::collections::BTreeMap::<String, usize>::new();
    for (token, answer) in &answers {
        match answer.status.as_u16() {
            200 => {
                let n = answer.json["phoneNumber"]["phoneNumber"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                assert!(numbers.insert(n), "a number was sold twice: {answers:?}");
                *per_account.entry(token.clone()).or_default() += 1;
            }
            400 => assert!(
                ["plan_limit_reached", "no_numbers_available"]
                    .contains(&answer.json["code"].as_str().unwrap()),
                "{}",
                answer.text
            ),
            s => panic!("purchase answered {s}: {}", answer.text),
        }
    }
    assert_eq!(numbers.len(), 5, "every pool number was sold once");
    assert!(per_account.values().all(|n| *n <= 3), "{per_account:?}");
    let held: ZNumberList = app.get(NUMBERS).expect_view(200).await;
    let theirs: ZNumberList = app.get(NUMBERS).token(&other.raw).expect_view(200).await;
    assert_eq!(held.numbers.len() + theirs.numbers.len(), 5);
}

#[wharf_testkit::dual_test]
async fn telnyx_numbers_are_searched_ordered_and_released(backend: Backend) {
    let telnyx = FakeTelnyx::start().await;
    telnyx.offer("+13125550201", "US", "Chicago");
    telnyx.offer("+13125550202", "US", "Chicago");
    telnyx.offer("+14155550203", "US", "San Francisco");
    let base = telnyx.base_url();
    let Some(app) = TestApp::spawn_with(backend, |c| {
        c.telnyx_api_key = Some(TELNYX_KEY.into());
        c.telnyx_base_url = base;
    })
    .await
    else {
        return;
    };
    // The pool is empty: Telnyx's numbers are offered, with the filters passed on.
    let all: ZAvailableList = app
        .get(&format!("{NUMBERS}/available"))
        .expect_view(200)
        .await;
    assert_eq!(all.numbers.len(), 3);
    assert!(all.numbers.iter().all(|n| n.source == "telnyx"));
    assert_eq!(all.numbers[0].locality.as_deref(), Some("Chicago"));
    assert_eq!(available(&app, "?prefix=415").await, ["+14155550203"]);
    assert_eq!(available(&app, "?locality=Chicago&limit=1").await.len(), 1);
    assert!(available(&app, "?country=CA").await.is_empty());
    let searches = telnyx.requests();
    assert!(
        searches
            .iter()
            .any(|r| r.contains("filter%5Bnational_destination_code%5D=415")
                && r.contains("filter%5Bcountry_code%5D=US")),
        "{searches:?}"
    );
    assert!(
        searches.iter().any(
            |r| r.contains("filter%5Blocality%5D=Chicago") && r.contains("filter%5Blimit%5D=1")
        ),
        "{searches:?}"
    );
    assert!(
        searches
            .iter()
            .any(|r| r.contains("filter%5Bcountry_code%5D=CA")),
        "{searches:?}"
    );

    // The pool comes first, Telnyx fills the rest.
    add_to_pool(&app, "+12125550101", "New York", None).await;
    let mixed: ZAvailableList = app
        .get(&format!("{NUMBERS}/available?limit=2"))
        .expect_view(200)
        .await;
    let sources: Vec<_> = mixed.numbers.iter().map(|n| n.source.as_str()).collect();
    assert_eq!(sources, ["pool", "telnyx"]);

    // A purchase takes the pool's number, then orders from Telnyx once the pool is empty.
    let pooled = purchase(&app, "acme").await.phone_number;
    assert_eq!(pooled.phone_number, "+12125550101");
    assert!(telnyx.owned().is_empty());
    let ordered = purchase(&app, "acme").await.phone_number;
    assert_eq!(ordered.phone_number, "+13125550201");
    assert_eq!(ordered.status, "active");
    assert_eq!(telnyx.owned(), ["+13125550201"]);
    assert!(
        telnyx
            .requests()
            .iter()
            .any(|r| r.starts_with("POST /v2/number_orders") && r.contains("+13125550201"))
    );

    // A pending order is provisioning until Telnyx completes it.
    telnyx.set_orders_pending(true);
    let pending = purchase(&app, "acme").await.phone_number;
    assert_eq!(pending.status, "provisioning");
    assert!(pending.provisioned_at.is_none());
    let polled: ZNumberAnswer = app
        .get(&format!("{NUMBERS}/{}", pending.id))
        .expect_view(200)
        .await;
    assert_eq!(polled.phone_number.status, "active");
    assert!(polled.phone_number.provisioned_at.is_some());
    assert_eq!(telnyx.owned().len(), 2);

    // Release gives the number back to Telnyx.
    let released: ZReleaseAnswer = app
        .delete(&format!("{NUMBERS}/{}", ordered.id))
        .expect_view(200)
        .await;
    assert_eq!(released.phone_number.status, "released");
    assert_eq!(telnyx.owned(), std::slice::from_ref(&pending.phone_number));
    assert!(
        telnyx
            .requests()
            .iter()
            .any(|r| r.starts_with("DELETE /v2/phone_numbers/"))
    );
    // Telnyx offers the released number again, and the next purchase orders it.
    let again = purchase(&app, "acme").await.phone_number;
    assert_eq!(again.phone_number, "+13125550201");

    // A number Telnyx is still provisioning cannot be released until its order completes.
    telnyx.set_orders_held(true);
    let held = purchase(&app, "acme").await.phone_number;
    assert_eq!(held.phone_number, "+14155550203");
    assert_eq!(held.status, "provisioning");
    refused(
        app.delete(&format!("{NUMBERS}/{}", held.id)),
        "provisioning_in_progress",
        None,
    )
    .await;
    telnyx.set_orders_held(false);
    let released: ZReleaseAnswer = app
        .delete(&format!("{NUMBERS}/{}", held.id))
        .expect_view(200)
        .await;
    assert_eq!(released.phone_number.status, "released");
    assert!(!telnyx.owned().contains(&held.phone_number));
}

#[wharf_testkit::dual_test(|c: &mut wharf_testkit::Config| {
    c.telnyx_api_key = Some(TELNYX_KEY.into());
    c.telnyx_base_url = "http://127.0.0.1:1".into();
})]
async fn an_unreachable_telnyx_is_a_503(app: TestApp) {
    // Nothing in the pool, Telnyx down: 503.
    let answer = app.get(&format!("{NUMBERS}/available")).expect(503).await;
    zernio_error(&answer, "platform_unavailable", None);
    // The pool's numbers are answered all the same, and sold.
    add_to_pool(&app, "+12125550101", "New York", None).await;
    assert_eq!(available(&app, "").await, ["+12125550101"]);
    assert_eq!(
        purchase(&app, "acme").await.phone_number.phone_number,
        "+12125550101"
    );
    let answer = app
        .post(&format!("{NUMBERS}/purchase"))
        .json(json!({"profileId": "acme"}))
        .expect(503)
        .await;
    zernio_error(&answer, "platform_unavailable", None);
    let list: ZNumberList = app.get(NUMBERS).expect_view(200).await;
    let held: Vec<_> = list.numbers.iter().map(|n| n.status.as_str()).collect();
    assert_eq!(held, ["active"], "nothing was half-bought");
}

#[wharf_testkit::dual_test(|c: &mut wharf_testkit::Config| c.phone_number_quota = 0)]
async fn a_zero_quota_is_a_paid_plan_403(app: TestApp) {
    add_to_pool(&app, "+12125550101", "New York", None).await;
    let answer = app.get(&format!("{NUMBERS}/available")).expect(403).await;
    assert!(
        answer["error"].as_str().unwrap().contains("paid plan"),
        "{answer}"
    );
    let answer = app
        .post(&format!("{NUMBERS}/purchase"))
        .json(json!({"profileId": "acme"}))
        .expect(403)
        .await;
    assert!(
        answer["error"].as_str().unwrap().contains("paid plan"),
        "{answer}"
    );
}

const WABA: &str = "102290129340398";
const SESSION_PNID: &str = "106540352242922";
const POOL_PNID: &str = "107000000000001";
const TOKEN: &str = "EAAFAKEshared";

#[wharf_testkit::dual_test]
async fn meta_registers_a_pool_number(app: TestApp) {
    let graph = app.graph().clone();
    add_to_pool(&app, "+15550001111", "New York", Some(POOL_PNID)).await;
    add_to_pool(&app, "+15550002222", "New York", None).await;
    let with_meta = purchase(&app, "acme").await.phone_number;
    let without = purchase(&app, "acme").await.phone_number;
    let path = |id: &str, op: &str| format!("{NUMBERS}/{id}/{op}");

    let message = refused(
        app.post(&path(&without.id, "request-code")).json(json!({})),
        "not_preverified",
        None,
    )
    .await;
    assert_eq!(
        message,
        "Number has not been added to Meta pre-verified pool"
    );
    refused(
        app.post(&path(&with_meta.id, "request-code"))
            .json(json!({})),
        "invalid_field_value",
        Some("accountId"),
    )
    .await;

    // The account's cloud session, whose token also manages the pool number at Meta.
    let mut own = FakeNumber::new(SESSION_PNID, WABA, "15550783881");
    own.access_token = TOKEN.into();
    let cloud = app.cloud_session(&graph, own, json!({})).await;
    let mut pooled = FakeNumber::new(POOL_PNID, WABA, "15550001111");
    pooled.access_token = TOKEN.into();
    graph.add_number(pooled.clone());

    for body in [json!({"method": "EMAIL"}), json!({"method": 5})] {
        refused(
            app.post(&path(&with_meta.id, "request-code")).json(body),
            "invalid_field_value",
            Some("method"),
        )
        .await;
    }
    let sms: ZCodeAnswer = app
        .post(&path(&with_meta.id, "request-code"))
        .expect_view(200)
        .await;
    assert_eq!(sms.method, "SMS");
    assert_eq!(sms.message, "Verification code sent via SMS");
    let voice: ZCodeAnswer = app
        .post(&format!("/api{}", path(&with_meta.id, "request-code")))
        .json(json!({"method": "VOICE", "accountId": cloud.session}))
        .expect_view(200)
        .await;
    assert_eq!(voice.method, "VOICE");
    let asked: Vec<_> = graph
        .requests()
        .into_iter()
        .filter(|r| r.path == format!("/{POOL_PNID}/request_code"))
        .collect();
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert!(asked[1].query.contains("code_method=VOICE"), "{asked:?}");
    assert_eq!(
        asked[1].authorization.as_deref(),
        Some("Bearer EAAFAKEshared")
    );
    let got: ZNumberAnswer = app
        .get(&format!("{NUMBERS}/{}", with_meta.id))
        .expect_view(200)
        .await;
    assert_eq!(
        got.phone_number.meta_verification_status.as_deref(),
        Some("code_requested")
    );

    // verify: the code is required and checked; Meta's refusal and outage come through.
    refused(
        app.post(&path(&with_meta.id, "verify")).json(json!({})),
        "invalid_field_value",
        Some("code"),
    )
    .await;
    refused(
        app.post(&path(&with_meta.id, "verify"))
            .json(json!({"code": "12"})),
        "invalid_field_value",
        Some("code"),
    )
    .await;
    let wrong = refused(
        app.post(&path(&with_meta.id, "verify"))
            .json(json!({"code": "000000"})),
        "platform_error",
        None,
    )
    .await;
    assert!(wrong.contains("Verification code"), "Meta's words: {wrong}");
    graph.fail_next(Failure::code(2).on_path("/verify_code"));
    let answer = app
        .post(&path(&with_meta.id, "verify"))
        .json(json!({"code": "123456"}))
        .expect(503)
        .await;
    zernio_error(&answer, "platform_unavailable", None);
    let verified: ZVerifyAnswer = app
        .post(&path(&with_meta.id, "verify"))
        .json(json!({"code": "123456"}))
        .expect_view(200)
        .await;
    assert_eq!(verified.message, "Phone number verified successfully");
    let at =
        wharf_core::time::parse_rfc3339(verified.meta_verified_at.as_deref().unwrap()).unwrap();
    let until =
        wharf_core::time::parse_rfc3339(verified.meta_verification_expires_at.as_deref().unwrap())
            .unwrap();
    assert_eq!(until - at, 90 * 24 * 3_600_000);
    assert_eq!(
        graph.verification_status(POOL_PNID).as_deref(),
        Some("VERIFIED")
    );
    let calls = graph.requests().len();
    let again: ZVerifyAnswer = app
        .post(&path(&with_meta.id, "verify"))
        .json(json!({"code": "123456"}))
        .expect_view(200)
        .await;
    assert_eq!(again.message, "Phone number is already verified");
    assert_eq!(graph.requests().len(), calls, "no second call to Meta");

    // The verified number is listed as pre-verified for its profile.
    let pre: ZPreverified = app
        .get(&format!("{NUMBERS}/preverified?profileId=acme"))
        .expect_view(200)
        .await;
    assert_eq!(pre.pre_verified_ids, [POOL_PNID]);
    assert_eq!(pre.numbers[0].phone_number, "+15550001111");
    assert_eq!(pre.numbers[0].meta_verified_at, verified.meta_verified_at);
    let none: ZPreverified = app
        .get(&format!("{NUMBERS}/preverified?profileId=other"))
        .expect_view(200)
        .await;
    assert!(none.numbers.is_empty());

    // One call makes it a cloud session; while that session lives the number stays held.
    let created = app
        .create_session(
            json!({"engine": "cloud", "cloud": wharf_testkit::cloud_body(&pooled, "verify-pool")}),
        )
        .await;
    let (session, _) = wharf_testkit::session_and_key(&created);
    let connected = app
        .post(&format!("/v1/whatsapp-sessions/{session}/connect"))
        .expect(200)
        .await;
    assert_eq!(connected["status"], "connected", "{connected}");
    let message = refused(
        app.delete(&format!("{NUMBERS}/{}", with_meta.id)),
        "number_in_use",
        None,
    )
    .await;
    assert!(message.contains(&session), "{message}");

    // Another account cannot register it, nor use this account's cloud session for its
    // own number; a released number cannot be registered.
    let (_, intruder) = app.store.create_account("intruder").await.unwrap();
    add_to_pool(&app, "+15550003333", "New York", Some("107000000000003")).await;
    let theirs: ZPurchaseAnswer = app
        .post(&format!("{NUMBERS}/purchase"))
        .token(&intruder.raw)
        .json(json!({"profileId": "theirs"}))
        .expect_view(200)
        .await;
    let answer = app
        .post(&path(&theirs.phone_number.id, "request-code"))
        .token(&intruder.raw)
        .json(json!({"accountId": cloud.session}))
        .expect(404)
        .await;
    zernio_error(&answer, "not_found", Some("accountId"));
    let answer = app
        .post(&path(&with_meta.id, "verify"))
        .token(&intruder.raw)
        .json(json!({"code": "123456"}))
        .expect(404)
        .await;
    zernio_error(&answer, "not_found", None);
    app.delete(&format!("{NUMBERS}/{}", without.id))
        .expect(200)
        .await;
    refused(
        app.post(&path(&without.id, "request-code")).json(json!({})),
        "already_released",
        None,
    )
    .await;

    // 90 days on, the verification no longer holds.
    app.config
        .clock
        .advance(std::time::Duration::from_secs(91 * 24 * 3600));
    let expired: ZPreverified = app
        .get(&format!("{NUMBERS}/preverified?profileId=acme"))
        .expect_view(200)
        .await;
    assert!(expired.numbers.is_empty());
    graph.assert_no_rejections();
}
