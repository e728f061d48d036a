//! The auth matrix (no token, bad token, PAT, session key, another tenant's keys) and rate
//! limiting.

use serde_json::json;
use wharf_testkit::{Backend, TestApp, assert_error};

#[wharf_testkit::dual_test]
async fn missing_and_invalid_tokens_are_401(mut app: wharf_testkit::TestApp) {
    let body = app
        .get("/v1/whatsapp-sessions")
        .anonymous()
        .expect(401)
        .await;
    assert_error(&body, "unauthenticated");
    for bad in [
        "nope",
        "wh_pat_0000",
        "wh_sk_ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    ] {
        let body = app
            .get("/v1/whatsapp-sessions")
            .token(bad)
            .expect(401)
            .await;
        assert_error(&body, "invalid_token");
    }
    let basic = app
        .get("/v1/whatsapp-sessions")
        .anonymous()
        .header("authorization", "Basic dXNlcjpwYXNz")
        .expect(401)
        .await;
    assert_error(&basic, "unauthenticated");
    // Every route behind auth refuses, emulator control included.
    app.post("/v1/whatsapp-sessions")
        .anonymous()
        .json(json!({}))
        .expect(401)
        .await;
    app.post("/emulator/sessions/sess_00000000000000000000000000/scan")
        .anonymous()
        .expect(401)
        .await;
    app.get("/v1/operations/op_00000000000000000000000000")
        .anonymous()
        .expect(401)
        .await;
}

#[wharf_testkit::dual_test]
async fn pat_works_as_bearer_and_as_x_api_key(mut app: wharf_testkit::TestApp) {
    app.get("/v1/whatsapp-sessions").expect(200).await;
    let pat = app.pat.clone();
    app.get("/v1/whatsapp-sessions")
        .api_key(&pat)
        .expect(200)
        .await;
    app.get("/v1/whatsapp-sessions")
        .anonymous()
        .header("authorization", &format!("bearer {pat}"))
        .expect(200)
        .await;
}

#[wharf_testkit::dual_test]
async fn an_authorization_header_that_is_not_bearer_falls_back_to_x_api_key(
    mut app: wharf_testkit::TestApp,
) {
    let pat = app.pat.clone();
    // A proxy's Basic credentials beside the key: the key is used.
    for other in ["Basic dXNlcjpwYXNz", "Negotiate", "Bearer"] {
        app.get("/v1/whatsapp-sessions")
            .api_key(&pat)
            .header("authorization", other)
            .expect(200)
            .await;
    }
    let alone = app
        .get("/v1/whatsapp-sessions")
        .anonymous()
        .header("authorization", "Basic dXNlcjpwYXNz")
        .expect(401)
        .await;
    assert_error(&alone, "unauthenticated");
    // A Bearer token is the credential even beside a key; a bad one is refused.
    let body = app
        .get("/v1/whatsapp-sessions")
        .api_key(&pat)
        .header("authorization", "Bearer nope")
        .expect(401)
        .await;
    assert_error(&body, "invalid_token");
}

#[wharf_testkit::dual_test]
async fn a_revoked_pat_stops_working(mut app: wharf_testkit::TestApp) {
    let account = app.account_id.parse().unwrap();
    let (key, token) = app
        .store
        .create_pat(account, Some("ci".into()))
        .await
        .unwrap();
    app.get("/v1/whatsapp-sessions")
        .token(&token.raw)
        .expect(200)
        .await;
    app.store
        .revoke_key(&key.fingerprint)
        .await
        .unwrap()
        .unwrap();
    let body = app
        .get("/v1/whatsapp-sessions")
        .token(&token.raw)
        .expect(401)
        .await;
    assert_error(&body, "invalid_token");
}

#[wharf_testkit::dual_test]
async fn a_session_key_sees_and_acts_on_its_own_session_only(mut app: wharf_testkit::TestApp) {
    let mine = app.create_session(json!({"label": "mine"})).await;
    let other = app.create_session(json!({"label": "other"})).await;
    let key = mine["session_api_key"]["raw"].as_str().unwrap();
    let my_id = mine["session"]["session_id"].as_str().unwrap();
    let other_id = other["session"]["session_id"].as_str().unwrap();

    let list = app
        .get("/v1/whatsapp-sessions")
        .token(key)
        .expect(200)
        .await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(list["data"][0]["session_id"], my_id);

    app.get(&format!("/v1/whatsapp-sessions/{my_id}"))
        .token(key)
        .expect(200)
        .await;
    app.patch(&format!("/v1/whatsapp-sessions/{my_id}"))
        .token(key)
        .json(json!({"label": "renamed"}))
        .expect(200)
        .await;
    app.patch(&format!("/v1/whatsapp-sessions/{my_id}/settings"))
        .token(key)
        .json(json!({"typing": true}))
        .expect(200)
        .await;
    app.post(&format!("/v1/whatsapp-sessions/{my_id}/connect"))
        .token(key)
        .expect(200)
        .await;
    app.get(&format!("/v1/whatsapp-sessions/{my_id}/qrcode"))
        .token(key)
        .expect(200)
        .await;
    app.post(&format!("/emulator/sessions/{my_id}/scan"))
        .token(key)
        .expect(200)
        .await;
    app.post(&format!("/v1/whatsapp-sessions/{my_id}/restart"))
        .token(key)
        .expect(200)
        .await;
    app.post(&format!("/v1/whatsapp-sessions/{my_id}/disconnect"))
        .token(key)
        .expect(200)
        .await;

    // The other session does not exist for this key.
    for path in [
        format!("/v1/whatsapp-sessions/{other_id}"),
        format!("/v1/whatsapp-sessions/{other_id}/settings"),
        format!("/v1/whatsapp-sessions/{other_id}/qrcode"),
    ] {
        let body = app.get(&path).token(key).expect(404).await;
        assert_error(&body, "not_found");
    }
    app.post(&format!("/v1/whatsapp-sessions/{other_id}/connect"))
        .token(key)
        .expect(404)
        .await;
    app.post(&format!("/emulator/sessions/{other_id}/scan"))
        .token(key)
        .expect(404)
        .await;

    // PAT-only routes are forbidden to session keys.
    let body = app
        .post("/v1/whatsapp-sessions")
        .token(key)
        .json(json!({}))
        .expect(403)
        .await;
    assert_error(&body, "forbidden");
    // Whatever the body: a session key is refused before the body is read (the collection's
    // own example sends "" for its booleans, and a non-JSON body would be 415).
    let body = app
        .post("/v1/whatsapp-sessions")
        .token(key)
        .json(json!({"settings": {"account_protection": ""}}))
        .expect(403)
        .await;
    assert_error(&body, "forbidden");
    app.post("/v1/whatsapp-sessions")
        .token(key)
        .raw("label=x", "text/plain")
        .expect(403)
        .await;
    // The webhook endpoints are the account's: 403 before the body or the path is looked at.
    for (method, path, body) in [
        ("POST", "/v1/webhooks".to_owned(), json!({"target_url": 7})),
        (
            "PATCH",
            "/v1/webhooks/not-an-id".to_owned(),
            json!({"is_active": "yes"}),
        ),
        (
            "POST",
            "/v1/webhooks/not-an-id/recover".to_owned(),
            json!({"since": "never"}),
        ),
        (
            "GET",
            "/v1/webhooks/not-an-id/deliveries".to_owned(),
            json!(null),
        ),
    ] {
        let call = match method {
            "POST" => app.post(&path).json(body),
            "PATCH" => app.patch(&path).json(body),
            _ => app.get(&path),
        };
        let answer = call.token(key).expect(403).await;
        assert_error(&answer, "forbidden");
    }
    app.delete(&format!("/v1/whatsapp-sessions/{my_id}"))
        .token(key)
        .expect(403)
        .await;
    app.post(&format!("/v1/whatsapp-sessions/{my_id}/regenerate-key"))
        .token(key)
        .expect(403)
        .await;
    // Still alive: the forbidden calls changed nothing.
    app.get(&format!("/v1/whatsapp-sessions/{my_id}"))
        .token(key)
        .expect(200)
        .await;
}

#[wharf_testkit::dual_test]
async fn another_tenant_cannot_tell_our_sessions_exist(mut app: wharf_testkit::TestApp) {
    let ours = app.create_session(json!({})).await;
    let id = ours["session"]["session_id"].as_str().unwrap();
    let (_, their_pat) = app.store.create_account("intruder").await.unwrap();
    let theirs = app
        .post("/v1/whatsapp-sessions")
        .token(&their_pat.raw)
        .json(json!({}))
        .expect(201)
        .await;
    let their_key = theirs["session_api_key"]["raw"].as_str().unwrap();

    let missing = app
        .get("/v1/whatsapp-sessions/sess_00000000000000000000000000")
        .token(&their_pat.raw)
        .expect(404)
        .await;
    for token in [their_pat.raw.as_str(), their_key] {
        let body = app
            .get(&format!("/v1/whatsapp-sessions/{id}"))
            .token(token)
            .expect(404)
            .await;
        assert_eq!(body, missing, "indistinguishable from a missing session");
        app.patch(&format!("/v1/whatsapp-sessions/{id}"))
            .token(token)
            .json(json!({"label": "x"}))
            .expect(404)
            .await;
        app.post(&format!("/v1/whatsapp-sessions/{id}/connect"))
            .token(token)
            .expect(404)
            .await;
        app.get(&format!("/v1/whatsapp-sessions/{id}/settings"))
            .token(token)
            .expect(404)
            .await;
    }
    app.delete(&format!("/v1/whatsapp-sessions/{id}"))
        .token(&their_pat.raw)
        .expect(404)
        .await;
    app.post(&format!("/v1/whatsapp-sessions/{id}/regenerate-key"))
        .token(&their_pat.raw)
        .expect(404)
        .await;
    let list = app
        .get("/v1/whatsapp-sessions")
        .token(&their_pat.raw)
        .expect(200)
        .await;
    assert_eq!(
        list["data"].as_array().unwrap().len(),
        1,
        "only their own session"
    );

    // Our deletion operation is invisible to them too.
    let op = app
        .delete(&format!("/v1/whatsapp-sessions/{id}"))
        .expect(202)
        .await;
    app.get(op["status_url"].as_str().unwrap())
        .token(&their_pat.raw)
        .expect(404)
        .await;
    // Our session is untouched by their attempts.
    let s = app
        .get(&format!("/v1/whatsapp-sessions/{id}"))
        .expect(200)
        .await;
    assert_eq!(s["label"], serde_json::Value::Null);
}

#[wharf_testkit::dual_test]
async fn authenticated_answers_carry_rate_limit_headers(mut app: wharf_testkit::TestApp) {
    let answer = app.get("/v1/whatsapp-sessions").send().await;
    assert_eq!(answer.header("x-ratelimit-limit"), Some("100000"));
    assert!(answer.header("x-ratelimit-remaining").is_some());
    assert!(answer.header("x-ratelimit-reset").is_some());
    // Errors of rate-limited routes carry them too.
    let missing = app.get("/v1/whatsapp-sessions/nope").send().await;
    assert_eq!(missing.status, 404);
    assert!(missing.header("x-ratelimit-remaining").is_some());
}

#[wharf_testkit::dual_test]
async fn rate_limit(backend: Backend) {
    let Some(app) =
        TestApp::spawn_with(backend, |c| c.rate_limit_per_minute = 3.try_into().unwrap()).await
    else {
        return;
    };
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let a = app.get("/v1/whatsapp-sessions").send().await;
        assert_eq!(a.status, 200);
        assert_eq!(a.header("x-ratelimit-limit"), Some("3"));
        remaining.push(a.header("x-ratelimit-remaining").unwrap().to_owned());
    }
    assert_eq!(remaining, ["2", "1", "0"]);
    let refused = app.get("/v1/whatsapp-sessions").send().await;
    assert_eq!(refused.status, 429);
    assert_error(&refused.json, "rate_limited");
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!(
        (1..=20).contains(&retry),
        "one request comes back every 20 s: {retry}"
    );
    assert_eq!(refused.header("x-ratelimit-remaining"), Some("0"));
    assert!(
        refused
            .header("x-ratelimit-reset")
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= retry
    );

    // The limit is per account: another account is unaffected.
    let (_, other) = app.store.create_account("other").await.unwrap();
    app.get("/v1/whatsapp-sessions")
        .token(&other.raw)
        .expect(200)
        .await;
    // Public routes are not limited.
    app.get("/healthz").anonymous().expect(200).await;
}

/// Instances on one database share each account's allowance: two limiters on one store (two
/// instances) together admit what one would, and each answers with the shared state.
#[wharf_testkit::dual_test]
async fn instances_on_one_database_share_the_rate_limit(app: wharf_testkit::TestApp) {
    use wharf_server::http::ratelimit::AccountLimiter;
    let per_minute = std::num::NonZeroU32::new(60).unwrap();
    let instances = [
        AccountLimiter::shared(per_minute, app.store.clone()),
        AccountLimiter::shared(per_minute, app.store.clone()),
    ];
    let account: wharf_core::AccountId = app.account_id.parse().unwrap();
    let (other, _) = app.store.create_account("other").await.unwrap();
    let mut admitted = [0; 2];
    let mut refused = None;
    for i in 0..100 {
        match instances[i % 2].check(&account).await {
            Ok(_) => admitted[i % 2] += 1,
            Err(e) => refused = Some(e),
        }
    }
    // 60 at once, and one a second after that (the loop may outlast a second).
    let total = admitted[0] + admitted[1];
    assert!((60..=62).contains(&total), "{admitted:?}");
    assert!(admitted.iter().all(|&n| n >= 29), "{admitted:?}");
    let refused = refused.expect("the allowance ran out");
    assert_eq!(refused.status, 429);
    let retry: u64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "one request a second: {retry}");
    // Another account is unaffected, on either instance.
    let granted = instances[1]
        .check(&other.id)
        .await
        .expect("another account");
    assert_eq!(granted.headers["x-ratelimit-remaining"], "59");
    // A database that cannot be asked leaves each instance its own allowance (the shared one
    // of `account` is empty), and for a few seconds after a failure the database is not asked
    // again: requests do not each wait for it to fail.
    if app.db().set_reachable(false).await {
        let lone = AccountLimiter::shared(per_minute, app.store.clone());
        assert!(lone.check(&account).await.is_ok());
        app.db().set_reachable(true).await;
        for _ in 0..5 {
            assert!(lone.check(&account).await.is_ok(), "not asked again yet");
        }
    }
}
