//! Phone numbers when things go wrong: Telnyx refusing or failing an order or a release
//! (the fake's injected failures), Telnyx's search filters, the quota on the Telnyx path,
//! and a release racing Meta's verification.

use serde_json::json;
use wharf_core::{AccountId, PhoneNumberId};
use wharf_server::http::business::numbers::{
    ZAvailableList, ZNumber, ZNumberAnswer, ZNumberList, ZPurchaseAnswer, ZReleaseAnswer,
};
use wharf_store::{NumberStatus, PoolAdd, PoolNumberRow, Release};
use wharf_testkit::{Backend, FakeTelnyx, TELNYX_KEY};

use super::*;

const NUMBERS: &str = "/v1/whatsapp/phone-numbers";
const A: &str = "+13125550301";
const B: &str = "+13125550302";
const C: &str = "+13125550303";
const D: &str = "+13125550304";
const GB: &str = "+442075550401";

async fn with_telnyx(backend: Backend, quota: u32) -> Option<(FakeTelnyx, TestApp)> {
    let telnyx = FakeTelnyx::start().await;
    for n in [A, B, C, D] {
        telnyx.offer(n, "US", "Chicago");
    }
    telnyx.offer(GB, "GB", "London");
    let base = telnyx.base_url();
    let app = TestApp::spawn_with(backend, |c| {
        c.telnyx_api_key = Some(TELNYX_KEY.into());
        c.telnyx_base_url = base;
        c.phone_number_quota = quota;
    })
    .await?;
    Some((telnyx, app))
}

async fn available(app: &TestApp, query: &str) -> Vec<String> {
    let list: ZAvailableList = app
        .get(&format!("{NUMBERS}/available{query}"))
        .expect_view(200)
        .await;
    list.numbers.into_iter().map(|n| n.phone_number).collect()
}

async fn purchase(app: &TestApp) -> ZNumber {
    let answer: ZPurchaseAnswer = app
        .post(&format!("{NUMBERS}/purchase"))
        .json(json!({"profileId": "acme"}))
        .expect_view(200)
        .await;
    answer.phone_number
}

async fn status(app: &TestApp, id: &str) -> String {
    let got: ZNumberAnswer = app.get(&format!("{NUMBERS}/{id}")).expect_view(200).await;
    got.phone_number.status
}

#[wharf_testkit::dual_test]
async fn telnyx_search_filters_follow_telnyx_rules(backend: Backend) {
    let Some((telnyx, app)) = with_telnyx(backend, 5).await else {
        return;
    };
    // A 3-digit North American prefix and up to 4 digits of `contains` go to Telnyx.
    assert_eq!(available(&app, "?prefix=312&contains=0303").await, [C]);
    assert!(telnyx.requests().iter().any(|r| {
        r.contains("filter%5Bnational_destination_code%5D=312")
            && r.contains("filter%5Bphone_number%5D%5Bcontains%5D=0303")
    }));
    // The rest is filtered here (the fake refuses what Telnyx refuses).
    assert_eq!(available(&app, "?contains=50302").await, [B]);
    assert_eq!(available(&app, "?prefix=312&contains=50302").await, [B]);
    assert_eq!(available(&app, "?country=GB&prefix=207").await, [GB]);
    assert_eq!(available(&app, "?prefix=3125").await, [A, B, C, D]);
    assert!(available(&app, "?prefix=3126").await.is_empty());
}

#[wharf_testkit::dual_test]
async fn telnyx_refusals_and_failures_leave_nothing_halfway(backend: Backend) {
    let Some((telnyx, app)) = with_telnyx(backend, 10).await else {
        return;
    };
    // A refused order (422: no longer available) is forgotten and the next offer ordered.
    telnyx.fail_next_order(422, false);
    let b = purchase(&app).await;
    assert_eq!(b.phone_number, B);
    assert_eq!(b.status, "active");
    let orders: Vec<_> = telnyx
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("POST /v2/number_orders"))
        .collect();
    assert_eq!(orders.len(), 2, "{orders:?}");
    assert!(
        orders[1].contains(&b.id),
        "the customer reference: {orders:?}"
    );
    let list: ZNumberList = app.get(NUMBERS).expect_view(200).await;
    assert_eq!(
        list.numbers.len(),
        1,
        "the refused reservation is forgotten"
    );

    // A refused release puts the number back as it was.
    telnyx.fail_next_release(400);
    let answer = app.delete(&format!("{NUMBERS}/{}", b.id)).expect(400).await;
    zernio_error(&answer, "platform_error", None);
    assert_eq!(status(&app, &b.id).await, "active");
    // A number Telnyx no longer has (404) is released.
    telnyx.fail_next_release(404);
    let released: ZReleaseAnswer = app
        .delete(&format!("{NUMBERS}/{}", b.id))
        .expect_view(200)
        .await;
    assert_eq!(released.phone_number.status, "released");

    // An order placed whose answer was lost (500): provisioning, then found by reference.
    telnyx.fail_next_order(500, true);
    let a = purchase(&app).await;
    assert_eq!(
        (a.phone_number.as_str(), a.status.as_str()),
        (A, "provisioning")
    );
    assert_eq!(status(&app, &a.id).await, "active");
    assert!(
        telnyx
            .requests()
            .iter()
            .any(|r| r.starts_with("GET /v2/number_orders?") && r.contains(&a.id))
    );

    // An order not placed (503): provisioning until it is stale, then released.
    telnyx.fail_next_order(503, false);
    let c = purchase(&app).await;
    assert_eq!(
        (c.phone_number.as_str(), c.status.as_str()),
        (C, "provisioning")
    );
    assert_eq!(status(&app, &c.id).await, "provisioning");
    let answer = app.delete(&format!("{NUMBERS}/{}", c.id)).expect(400).await;
    zernio_error(&answer, "provisioning_in_progress", None);
    app.config
        .clock
        .advance(std::time::Duration::from_secs(11 * 60));
    let released: ZReleaseAnswer = app
        .delete(&format!("{NUMBERS}/{}", c.id))
        .expect_view(200)
        .await;
    assert_eq!(released.phone_number.status, "released");

    // A release failing halfway (500) stays releasing; the next DELETE finishes it.
    telnyx.fail_next_release(500);
    let answer = app.delete(&format!("{NUMBERS}/{}", a.id)).expect(503).await;
    zernio_error(&answer, "platform_unavailable", None);
    assert_eq!(status(&app, &a.id).await, "releasing");
    let released: ZReleaseAnswer = app
        .delete(&format!("{NUMBERS}/{}", a.id))
        .expect_view(200)
        .await;
    assert_eq!(released.phone_number.status, "released");
    assert!(!telnyx.owned().contains(&A.to_owned()));

    // The operator's key refused (401): 503, and nothing was half-bought.
    telnyx.fail_next_order(401, false);
    let answer = app
        .post(&format!("{NUMBERS}/purchase"))
        .json(json!({"profileId": "acme"}))
        .expect(503)
        .await;
    zernio_error(&answer, "platform_unavailable", None);
    let list: ZNumberList = app.get(NUMBERS).expect_view(200).await;
    assert!(list.numbers.is_empty(), "{:?}", list.numbers);

    // A number an account holds through Telnyx cannot be added to the pool.
    let held = purchase(&app).await;
    let added = app
        .store
        .add_pool_number(&PoolNumberRow {
            phone_number: held.phone_number.clone(),
            country: "US".into(),
            area_code: Some("312".into()),
            locality: None,
            meta_preverified_id: None,
            assigned_to: None,
            created_at: 0,
        })
        .await
        .unwrap();
    assert_eq!(added, PoolAdd::Held(held.id.parse().unwrap()));
}

#[wharf_testkit::dual_test]
async fn a_pool_number_held_through_telnyx_is_skipped(backend: Backend) {
    let Some((telnyx, app)) = with_telnyx(backend, 5).await else {
        return;
    };
    // The pool has a number Telnyx also sells (in Canada here), and an account orders it
    // from Telnyx: the pool no longer offers or assigns it (once a 500).
    let shared = "+16045550501";
    telnyx.offer(shared, "CA", "Vancouver");
    app.store
        .add_pool_number(&PoolNumberRow {
            phone_number: shared.into(),
            country: "US".into(),
            area_code: None,
            locality: None,
            meta_preverified_id: None,
            assigned_to: None,
            created_at: 0,
        })
        .await
        .unwrap();
    let ordered: ZPurchaseAnswer = app
        .post(&format!("{NUMBERS}/purchase"))
        .json(json!({"profileId": "acme", "country": "CA"}))
        .expect_view(200)
        .await;
    assert_eq!(ordered.phone_number.phone_number, shared);
    assert!(!available(&app, "").await.contains(&shared.to_owned()));
    let next = purchase(&app).await;
    assert_eq!(next.phone_number, A, "Telnyx's, not the held pool number");
}

#[wharf_testkit::dual_test]
async fn the_quota_holds_on_the_telnyx_path(backend: Backend) {
    let Some((telnyx, app)) = with_telnyx(backend, 1).await else {
        return;
    };
    assert_eq!(purchase(&app).await.phone_number, A);
    let answer = app
        .post(&format!("{NUMBERS}/purchase"))
        .json(json!({"profileId": "acme"}))
        .expect(400)
        .await;
    zernio_error(&answer, "plan_limit_reached", None);
    let orders = telnyx
        .requests()
        .iter()
        .filter(|r| r.starts_with("POST /v2/number_orders"))
        .count();
    assert_eq!(orders, 1, "no order past the quota");
}

#[wharf_testkit::dual_test]
async fn a_release_is_never_undone_by_a_late_write(app: TestApp) {
    app.store
        .add_pool_number(&PoolNumberRow {
            phone_number: "+15550001111".into(),
            country: "US".into(),
            area_code: Some("555".into()),
            locality: None,
            meta_preverified_id: Some("107000000000001".into()),
            assigned_to: None,
            created_at: 0,
        })
        .await
        .unwrap();
    let bought = purchase(&app).await;
    assert_eq!(bought.phone_number, "+15550001111");
    // Localities match case-insensitively beyond ASCII, on both backends.
    app.store
        .add_pool_number(&PoolNumberRow {
            phone_number: "+56225550101".into(),
            country: "CL".into(),
            area_code: None,
            locality: Some("Ñuñoa".into()),
            meta_preverified_id: None,
            assigned_to: None,
            created_at: 1,
        })
        .await
        .unwrap();
    assert_eq!(
        available(&app, "?locality=%C3%91U%C3%91OA").await,
        ["+56225550101"]
    );
    let account: AccountId = app.account_id.parse().unwrap();
    let id: PhoneNumberId = bought.id.parse().unwrap();
    let row = app.store.phone_number(account, id).await.unwrap().unwrap();
    // A verify read the row, then a release began while Meta was called.
    let Some(Release::Done(_)) = app.store.begin_release(account, id, 1).await.unwrap() else {
        panic!("the release did not begin");
    };
    let mut verified = row.clone();
    verified.meta_verification_status = Some("verified".into());
    verified.meta_verified_at = Some(2);
    verified.meta_verification_expires_at = Some(i64::MAX);
    assert!(!app.store.record_verification(&verified, 2).await.unwrap());
    // A late order outcome does not touch a number that is not provisioning.
    assert!(
        !app.store
            .settle_order(account, id, Some("ord"), Some(true), 3)
            .await
            .unwrap()
    );
    let now = app.store.phone_number(account, id).await.unwrap().unwrap();
    assert_eq!(now.status, NumberStatus::Releasing);
    assert_eq!(now.meta_verification_status.as_deref(), Some("pending"));
    // Restoring puts it back only while it is being released.
    assert!(
        app.store
            .restore_release(account, id, NumberStatus::Active, 4)
            .await
            .unwrap()
    );
    assert!(
        !app.store
            .restore_release(account, id, NumberStatus::Active, 5)
            .await
            .unwrap()
    );
    assert!(app.store.record_verification(&verified, 6).await.unwrap());
}

/// A number whose order is still pending at Telnyx 24 hours on can be released: the order is
/// cancelled at Telnyx first, so it never completes into a number nobody holds.
#[wharf_testkit::dual_test]
async fn a_pending_order_released_past_its_deadline_is_cancelled_at_telnyx(backend: Backend) {
    let Some((telnyx, app)) = with_telnyx(backend, 10).await else {
        return;
    };
    telnyx.set_orders_pending(true);
    telnyx.set_orders_held(true);
    let a = purchase(&app).await;
    assert_eq!(
        (a.phone_number.as_str(), a.status.as_str()),
        (A, "provisioning")
    );
    let answer = app.delete(&format!("{NUMBERS}/{}", a.id)).expect(400).await;
    zernio_error(&answer, "provisioning_in_progress", None);
    assert!(
        !telnyx.requests().iter().any(|r| r.contains("/cancel")),
        "nothing is cancelled before the deadline"
    );

    app.config
        .clock
        .advance(std::time::Duration::from_secs(25 * 3600));
    // Telnyx will not cancel it (its sub-order refused): the number stays provisioning.
    telnyx.fail_next_cancel(400);
    let answer = app.delete(&format!("{NUMBERS}/{}", a.id)).expect(400).await;
    let message = zernio_error(&answer, "provisioning_in_progress", None);
    assert!(message.contains("cancel"), "{message}");
    assert_eq!(status(&app, &a.id).await, "provisioning");
    assert_eq!(telnyx.order_status(A).as_deref(), Some("pending"));

    // Telnyx cancels it: released, and the order can no longer complete.
    let released: ZReleaseAnswer = app
        .delete(&format!("{NUMBERS}/{}", a.id))
        .expect_view(200)
        .await;
    assert_eq!(released.phone_number.status, "released");
    assert!(
        telnyx
            .requests()
            .iter()
            .any(|r| r.starts_with("PATCH /v2/sub_number_orders/") && r.ends_with("/cancel")),
        "{:?}",
        telnyx.requests()
    );
    assert_eq!(telnyx.order_status(A).as_deref(), Some("failure"));
    telnyx.set_orders_held(false);
    assert!(!telnyx.owned().contains(&A.to_owned()));
    assert_eq!(status(&app, &a.id).await, "released");

    // An order that completed meanwhile is a number Telnyx holds: it is given back.
    telnyx.set_orders_held(true);
    let b = purchase(&app).await;
    assert_eq!(b.status, "provisioning");
    app.config
        .clock
        .advance(std::time::Duration::from_secs(25 * 3600));
    telnyx.set_orders_held(false);
    let released: ZReleaseAnswer = app
        .delete(&format!("{NUMBERS}/{}", b.id))
        .expect_view(200)
        .await;
    assert_eq!(released.phone_number.status, "released");
    assert!(!telnyx.owned().contains(&b.phone_number));
}

/// What a crash or an outage left halfway is taken up when the server starts: a release
/// Telnyx did not confirm, and an order whose answer was lost.
#[wharf_testkit::dual_test]
async fn the_server_reconciles_numbers_left_halfway_when_it_starts(backend: Backend) {
    let Some((telnyx, mut app)) = with_telnyx(backend, 10).await else {
        return;
    };
    let a = purchase(&app).await;
    telnyx.fail_next_release(500);
    app.delete(&format!("{NUMBERS}/{}", a.id)).expect(503).await;
    assert_eq!(status(&app, &a.id).await, "releasing");
    telnyx.fail_next_order(500, true);
    let b = purchase(&app).await;
    assert_eq!(b.status, "provisioning");
    assert!(
        telnyx.owned().contains(&b.phone_number),
        "the order was placed"
    );

    app.config
        .clock
        .advance(std::time::Duration::from_secs(11 * 60));
    app.restart().await;
    let account: AccountId = app.account_id.parse().unwrap();
    let (a_id, b_id): (PhoneNumberId, PhoneNumberId) =
        (a.id.parse().unwrap(), b.id.parse().unwrap());
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        // Read from the store: a GET would itself check the order with Telnyx.
        let a_row = app
            .store
            .phone_number(account, a_id)
            .await
            .unwrap()
            .unwrap();
        let b_row = app
            .store
            .phone_number(account, b_id)
            .await
            .unwrap()
            .unwrap();
        if (a_row.status, b_row.status) == (NumberStatus::Released, NumberStatus::Active) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not reconciled at startup: {:?}, {:?}",
            a_row.status,
            b_row.status
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(!telnyx.owned().contains(&a.phone_number));
    assert!(telnyx.owned().contains(&b.phone_number));
}
