//! Many `wharf serve` processes on one PostgreSQL database: running sessions are spread over
//! the instances by lease, an instance killed with `kill -9` has its sessions taken over
//! within the lease time with every accepted message sent once, and a clean stop hands its
//! sessions over at once. On SQLite the one instance owns every running session.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wharf_testkit::{Backend, TestDb};

use super::{Served, start_serve, token_of, wharf};

/// The lease length the instances run with (a pass every third of it).
const LEASE_MS: u64 = 6_000;
const SESSIONS: usize = 6;

fn settings() -> Vec<(&'static str, String)> {
    vec![
        ("WHARF_LEASE_TTL_MS", LEASE_MS.to_string()),
        ("WHARF_SEND_RATE_EMULATOR", "10".into()),
        ("WHARF_EMULATOR_DELIVERED_AFTER_MS", "-1".into()),
        ("WHARF_EMULATOR_READ_AFTER_MS", "-1".into()),
    ]
}

fn instance(db: &TestDb, name: &str, first: bool) -> Served {
    let env = settings();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    start_serve(db, &["--instance-id", name], &env, first)
}

/// The database of a PostgreSQL-only test.
async fn postgres() -> TestDb {
    TestDb::create(Backend::Postgres)
        .await
        .expect("WHARF_TEST_DATABASE_URL is set")
}

/// `wharf instances --json`.
fn instances(db: &TestDb) -> Value {
    let (ok, out, err) = wharf(db, &["instances", "--json"]);
    assert!(ok, "wharf instances: {err}");
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// Session ids owned by each live instance, by instance name.
fn owners(view: &Value) -> Vec<(String, Vec<String>)> {
    view["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let sessions = i["sessions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["session_id"].as_str().unwrap().to_owned())
                .collect();
            (i["name"].as_str().unwrap().to_owned(), sessions)
        })
        .collect()
}

/// Polls `wharf instances` until `done` holds (at most `within`); returns the view and how
/// long it took.
fn until(db: &TestDb, within: Duration, done: impl Fn(&Value) -> bool) -> (Value, Duration) {
    let began = Instant::now();
    loop {
        let view = instances(db);
        if done(&view) {
            return (view, began.elapsed());
        }
        assert!(began.elapsed() < within, "not within {within:?}: {view:#}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct Api {
    client: reqwest::Client,
    pat: String,
}

impl Api {
    /// The API as the operator `served` printed the token of when it started first.
    fn of(served: &Served) -> Self {
        wharf_server::install_crypto();
        Self {
            client: reqwest::Client::new(),
            pat: token_of(&served.banner),
        }
    }
}

impl Api {
    async fn call(
        &self,
        addr: &std::net::SocketAddr,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .client
            .request(method.clone(), format!("http://{addr}{path}"))
            .bearer_auth(&self.pat);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let answer = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = answer.status().as_u16();
        let text = answer.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn ok(
        &self,
        addr: &std::net::SocketAddr,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let (status, answer) = self.call(addr, method.clone(), path, body).await;
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {answer}"
        );
        answer
    }
}

impl Api {
    /// `n` emulator sessions created, connected and scanned through the instance at `addr`
    /// (which owns them while it is the only one).
    async fn connected_sessions(&self, addr: &std::net::SocketAddr, n: usize) -> Vec<String> {
        use reqwest::Method;
        let mut sessions = Vec::with_capacity(n);
        for _ in 0..n {
            let created = self
                .ok(addr, Method::POST, "/v1/whatsapp-sessions", Some(json!({})))
                .await;
            let id = created["session"]["session_id"]
                .as_str()
                .unwrap()
                .to_owned();
            for path in [
                format!("/v1/whatsapp-sessions/{id}/connect"),
                format!("/emulator/sessions/{id}/scan"),
            ] {
                self.ok(addr, Method::POST, &path, None).await;
            }
            sessions.push(id);
        }
        sessions
    }
}

fn kill_9(served: &mut Served) {
    served.child.kill().expect("kill -9");
    let _ = served.child.wait();
}

#[wharf_testkit::dual_test]
async fn sessions_are_spread_taken_over_after_kill_9_and_handed_over_on_stop(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let mut a = instance(&db, "a", true);
    let api = Api::of(&a);
    use reqwest::Method;
    let sessions = api.connected_sessions(&a.addr, SESSIONS).await;
    // The instance that started them owns them all.
    let (view, _) = until(&db, Duration::from_secs(5), |v| {
        owners(v).iter().map(|(_, s)| s.len()).sum::<usize>() == SESSIONS
    });
    assert_eq!(owners(&view).len(), 1, "{view:#}");
    assert_eq!(view["unowned_sessions"], json!([]));
    if backend == Backend::Sqlite {
        // One instance per SQLite file (a second refuses to start: `main.rs`).
        a.stop();
        return;
    }

    // Two more instances join: the sessions spread two by two, and each new owner connects
    // the sessions it took (from the device state in the database, no new scan).
    let mut b = instance(&db, "b", false);
    let mut c = instance(&db, "c", false);
    let (view, _) = until(&db, Duration::from_millis(4 * LEASE_MS), |v| {
        let o = owners(v);
        o.len() == 3 && o.iter().all(|(_, s)| s.len() == 2)
    });
    assert_eq!(view["unowned_sessions"], json!([]));
    for id in &sessions {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let row = api
                .ok(
                    &c.addr,
                    Method::GET,
                    &format!("/v1/whatsapp-sessions/{id}"),
                    None,
                )
                .await;
            if row["status"] == "connected" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{id} reconnects after moving: {row}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // A call that needs the live connection, made on an instance that does not run the
    // session, is answered by the one that does (forwarded), with the same answer.
    let view = instances(&db);
    let on_b = owners(&view)
        .into_iter()
        .find(|(name, _)| name == "b")
        .map(|(_, s)| s[0].clone())
        .unwrap();
    let path = format!("/api/on-whatsapp/+15550100001?session_id={on_b}");
    let mut took = [Duration::ZERO; 2];
    let mut answers = Vec::new();
    for round in 0..20 {
        for (i, addr) in [b.addr, a.addr].iter().enumerate() {
            let began = Instant::now();
            let (status, answer) = api.call(addr, Method::GET, &path, None).await;
            if round > 0 {
                took[i] += began.elapsed();
            }
            assert_eq!(status, 200, "{answer}");
            answers.push(answer);
        }
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
    eprintln!(
        "on-whatsapp, mean of 19 calls: {:?} on the owner, {:?} through another instance",
        took[0] / 19,
        took[1] / 19
    );

    // Sends through every instance; the owner of each session dispatches it.
    let per_session = 60;
    let mut messages = Vec::new();
    let send = |round: usize, via: Vec<std::net::SocketAddr>| {
        let (api, sessions) = (&api, &sessions);
        async move {
            let mut ids = Vec::new();
            for (n, id) in sessions.iter().enumerate() {
                let answer = api
                    .ok(
                        &via[(round + n) % via.len()],
                        Method::POST,
                        "/api/send-message",
                        Some(json!({"session_id": id, "to": format!("+1555010{round:04}"), "text": format!("m{round}")})),
                    )
                    .await;
                ids.push(answer["message_id"].as_str().unwrap().to_owned());
            }
            ids
        }
    };
    // Half the sends go through all three instances...
    for round in 0..per_session / 2 {
        messages.extend(send(round, vec![a.addr, b.addr, c.addr]).await);
    }
    // ... then b dies mid-dispatch (10 sends/s a session), and the other half goes through a
    // and c: those for b's sessions can only be sent by the instances that take them over.
    let b_sessions: Vec<String> = owners(&instances(&db))
        .into_iter()
        .find(|(name, _)| name == "b")
        .map(|(_, s)| s)
        .unwrap_or_default();
    assert_eq!(b_sessions.len(), 2);
    let list = b_sessions
        .iter()
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let waiting = db
        .count(&format!(
            "SELECT COUNT(*) FROM messages WHERE status <> 'sent' AND session_id IN ({list})"
        ))
        .await;
    let killed = Instant::now();
    kill_9(&mut b);
    for round in per_session / 2..per_session {
        messages.extend(send(round, vec![a.addr, c.addr]).await);
    }
    // Within the lease (and a pass), a and c own every session again.
    let (view, _) = until(&db, Duration::from_millis(2 * LEASE_MS), |v| {
        let o = owners(v);
        o.len() == 2 && o.iter().map(|(_, s)| s.len()).sum::<usize>() == SESSIONS
    });
    let took = killed.elapsed();
    let unsent = db
        .count("SELECT COUNT(*) FROM messages WHERE status <> 'sent'")
        .await;
    eprintln!(
        "kill -9 with {waiting} of b's messages unsent: every session owned again after {took:?} ({unsent} messages unsent then)"
    );
    assert!(
        took <= Duration::from_millis(LEASE_MS + LEASE_MS / 3 + 1_500),
        "taken over in {took:?}: {view:#}"
    );
    // Every message is sent, and recorded as sent once.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let sent = db
            .count("SELECT COUNT(*) FROM messages WHERE status = 'sent'")
            .await;
        if sent == messages.len() as i64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{sent} of {} sent",
            messages.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        db.count("SELECT COUNT(*) FROM events WHERE type = 'message.sent'")
            .await,
        messages.len() as i64
    );
    assert_eq!(
        db.count("SELECT COUNT(DISTINCT message_id) FROM events WHERE type = 'message.sent'")
            .await,
        messages.len() as i64
    );
    assert_eq!(db.count("SELECT COUNT(*) FROM outbox").await, 0);

    // A clean stop hands a's sessions to c at once, well before a lease would expire.
    let stopped = Instant::now();
    a.stop();
    let (view, _) = until(&db, Duration::from_millis(LEASE_MS), |v| {
        let o = owners(v);
        o.len() == 1 && o[0].1.len() == SESSIONS
    });
    let took = stopped.elapsed();
    eprintln!("clean stop: every session owned again after {took:?}");
    assert!(
        took < Duration::from_millis(LEASE_MS * 2 / 3 + 1_000),
        "handed over in {took:?}: {view:#}"
    );
    c.stop();
}

fn signal(served: &Served, name: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &served.child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
}

/// An owner stopped (SIGSTOP) past its lease loses its sessions to another instance, which
/// sends everything; woken (SIGCONT), the former owner writes nothing about those messages
/// and stops the engines it still ran.
#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(
    not(wharf_postgres),
    ignore = "WHARF_TEST_DATABASE_URL was not set when the tests were built"
)]
async fn a_stalled_owner_writes_nothing_after_losing_its_lease() {
    let db = postgres().await;
    let mut a = instance(&db, "a", true);
    let api = Api::of(&a);
    use reqwest::Method;
    let sessions = api.connected_sessions(&a.addr, 2).await;
    let mut messages = 0;
    for i in 0..40 {
        for id in &sessions {
            api.ok(
                &a.addr,
                Method::POST,
                "/api/send-message",
                Some(json!({"session_id": id, "to": format!("+1555020{i:04}"), "text": "x"})),
            )
            .await;
            messages += 1;
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    signal(&a, "STOP");
    let mut b = instance(&db, "b", false);
    // Once a's leases expire, b owns both sessions and sends everything.
    until(&db, Duration::from_millis(3 * LEASE_MS), |v| {
        let o = owners(v);
        o.iter().any(|(name, s)| name == "b" && s.len() == 2)
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let sent = db
            .count("SELECT COUNT(*) FROM messages WHERE status = 'sent'")
            .await;
        if sent == messages {
            break;
        }
        assert!(Instant::now() < deadline, "{sent} of {messages} sent");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let message_events = "SELECT COUNT(*) FROM events WHERE type LIKE 'message.%'";
    let before = db.count(message_events).await;
    signal(&a, "CONT");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !a
        .log
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("lost the lease of a session to another instance"))
    {
        assert!(Instant::now() < deadline, "a sees it lost its leases");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        db.count(message_events).await,
        before,
        "a wrote nothing about the messages"
    );
    assert_eq!(
        db.count("SELECT COUNT(DISTINCT message_id) FROM events WHERE type = 'message.sent'")
            .await,
        messages
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM events WHERE type = 'message.sent'")
            .await,
        messages
    );
    a.stop();
    b.stop();
}

/// A rolling restart: each of three instances in turn stops cleanly (handing its sessions
/// over) and starts again, while sends flow through the others. Nothing is lost or doubled.
#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(
    not(wharf_postgres),
    ignore = "WHARF_TEST_DATABASE_URL was not set when the tests were built"
)]
async fn a_rolling_restart_of_every_instance_loses_nothing() {
    let db = postgres().await;
    let first = instance(&db, "a", true);
    let api = Api::of(&first);
    use reqwest::Method;
    let sessions = api.connected_sessions(&first.addr, SESSIONS).await;
    let mut running = vec![first, instance(&db, "b", false), instance(&db, "c", false)];
    let spread = |v: &Value| {
        let o = owners(v);
        o.len() == 3 && o.iter().all(|(_, s)| s.len() == 2)
    };
    until(&db, Duration::from_millis(4 * LEASE_MS), spread);
    let mut accepted = 0;
    for turn in 0..3 {
        // Sends through the instances that stay up while this one restarts.
        for i in 0..20 {
            for id in &sessions {
                let via = running[(turn + 1 + i % 2) % 3].addr;
                api.ok(
                    &via,
                    Method::POST,
                    "/api/send-message",
                    Some(json!({"session_id": id, "to": format!("+1555030{i:04}"), "text": "r"})),
                )
                .await;
                accepted += 1;
            }
        }
        let name = ["a", "b", "c"][turn];
        super::terminate(&running[turn].child);
        let status = running[turn].child.wait().unwrap();
        assert!(status.success(), "{name} stops cleanly: {status}");
        // Its sessions are owned by the other two at once, then it comes back for its share.
        until(&db, Duration::from_millis(LEASE_MS), |v| {
            owners(v).len() == 2 && v["unowned_sessions"] == json!([])
        });
        running[turn] = instance(&db, name, false);
        until(&db, Duration::from_millis(4 * LEASE_MS), spread);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let sent = db
            .count("SELECT COUNT(*) FROM messages WHERE status = 'sent'")
            .await;
        if sent == accepted {
            break;
        }
        assert!(Instant::now() < deadline, "{sent} of {accepted} sent");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        db.count("SELECT COUNT(*) FROM events WHERE type = 'message.sent'")
            .await,
        accepted
    );
    assert_eq!(
        db.count("SELECT COUNT(DISTINCT message_id) FROM events WHERE type = 'message.sent'")
            .await,
        accepted
    );
    for served in &mut running {
        served.stop();
    }
}

/// An account's API rate limit holds across instances: requests spread over three instances
/// are admitted at the configured rate (a burst of a minute's worth, then evenly), within 10 %,
/// not three times over.
#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(
    not(wharf_postgres),
    ignore = "WHARF_TEST_DATABASE_URL was not set when the tests were built"
)]
async fn the_rate_limit_holds_across_instances() {
    const PER_MINUTE: u32 = 300;
    let db = postgres().await;
    let per_minute = PER_MINUTE.to_string();
    let limit = [("WHARF_RATE_LIMIT_PER_MINUTE", per_minute.as_str())];
    let mut running = vec![start_serve(&db, &["--instance-id", "a"], &limit, true)];
    let api = Api::of(&running[0]);
    for name in ["b", "c"] {
        running.push(start_serve(&db, &["--instance-id", name], &limit, false));
    }
    let addrs: Vec<_> = running.iter().map(|s| s.addr).collect();
    // Eight clients, each going round the three instances, for four seconds.
    let began = Instant::now();
    let run_for = Duration::from_secs(4);
    let clients = (0..8).map(|n| {
        let (api, addrs) = (&api, &addrs);
        async move {
            let mut counts = [[0u32; 2]; 3];
            let mut retry_after = Vec::new();
            let mut i = n;
            while began.elapsed() < run_for {
                let at = i % addrs.len();
                let answer = api
                    .client
                    .get(format!("http://{}/v1/whatsapp-sessions", addrs[at]))
                    .bearer_auth(&api.pat)
                    .send()
                    .await
                    .unwrap();
                match answer.status().as_u16() {
                    200 => counts[at][0] += 1,
                    429 => {
                        counts[at][1] += 1;
                        retry_after
                            .push(answer.headers()["retry-after"].to_str().unwrap().to_owned());
                    }
                    other => panic!("{other}: {}", answer.text().await.unwrap()),
                }
                i += 1;
            }
            (counts, retry_after)
        }
    });
    let results = futures::future::join_all(clients).await;
    let elapsed = began.elapsed().as_secs_f64();
    let mut per_instance = [[0u32; 2]; 3];
    for (counts, retry_after) in &results {
        for (total, c) in per_instance.iter_mut().zip(counts) {
            total[0] += c[0];
            total[1] += c[1];
        }
        assert!(retry_after.iter().all(|r| r == "1"), "{retry_after:?}");
    }
    let admitted: u32 = per_instance.iter().map(|c| c[0]).sum();
    let refused: u32 = per_instance.iter().map(|c| c[1]).sum();
    // A minute's worth at once, then one every 200 ms.
    let allowed = f64::from(PER_MINUTE) + elapsed * f64::from(PER_MINUTE) / 60.0;
    eprintln!(
        "rate limit {PER_MINUTE}/min over 3 instances, {elapsed:.1} s: {admitted} admitted \
         ({:.1} % of {allowed:.0}), {refused} refused; per instance [admitted, refused]: \
         {per_instance:?}",
        100.0 * f64::from(admitted) / allowed
    );
    assert!(refused > 0, "the clients went past the limit");
    assert!(
        (f64::from(admitted) - allowed).abs() <= allowed * 0.1,
        "{admitted} admitted, {allowed:.0} allowed"
    );
    assert!(
        per_instance.iter().all(|c| c[0] > 0 && c[1] > 0),
        "{per_instance:?}"
    );
    for served in &mut running {
        served.stop();
    }
}

/// The event stream works from any instance: events of a session another instance runs reach
/// a stream opened on this one.
#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(
    not(wharf_postgres),
    ignore = "WHARF_TEST_DATABASE_URL was not set when the tests were built"
)]
async fn the_event_stream_of_any_instance_carries_every_instances_events() {
    let db = postgres().await;
    let mut a = instance(&db, "a", true);
    let api = Api::of(&a);
    use reqwest::Method;
    let sessions = api.connected_sessions(&a.addr, 2).await;
    let mut b = instance(&db, "b", false);
    let (view, _) = until(&db, Duration::from_millis(4 * LEASE_MS), |v| {
        let o = owners(v);
        o.len() == 2 && o.iter().all(|(_, s)| s.len() == 1)
    });
    let on_a = owners(&view)
        .into_iter()
        .find(|(name, _)| name == "a")
        .map(|(_, s)| s[0].clone())
        .unwrap();
    assert!(sessions.contains(&on_a));
    // A stream opened on b, from now on.
    let mut after = 0;
    loop {
        let page = api
            .ok(
                &b.addr,
                Method::GET,
                &format!("/v1/events?after={after}&limit=100"),
                None,
            )
            .await;
        after = page["next_cursor"].as_i64().unwrap();
        if page["data"].as_array().unwrap().is_empty() {
            break;
        }
    }
    let mut stream = api
        .client
        .get(format!("http://{}/v1/events/stream?after={after}", b.addr))
        .bearer_auth(&api.pat)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    // Sends for a's session, through a and through b: a sends both and writes their events.
    let sent_at = Instant::now();
    let mut messages = Vec::new();
    for via in [a.addr, b.addr] {
        let answer = api
            .ok(
                &via,
                Method::POST,
                "/api/send-message",
                Some(json!({"session_id": on_a, "to": "+15550400001", "text": "seen from b"})),
            )
            .await;
        messages.push(answer["message_id"].as_str().unwrap().to_owned());
    }
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let all_sent = |text: &str| {
        messages.iter().all(|m| {
            text.split("\n\n")
                .any(|e| e.contains("event: message.sent") && e.contains(m.as_str()))
        })
    };
    while !all_sent(&text) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.chunk()).await {
            Ok(Ok(Some(chunk))) => text.push_str(&String::from_utf8_lossy(&chunk)),
            other => panic!("message.sent of {messages:?} on b's stream: {other:?}\n{text}"),
        }
    }
    eprintln!(
        "a's message.sent events reached b's stream {:?} after the first send",
        sent_at.elapsed()
    );
    drop(stream);
    for served in [&mut a, &mut b] {
        served.stop();
    }
}
