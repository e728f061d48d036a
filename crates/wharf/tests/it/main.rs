//! The binary end to end: accounts and keys commands, `migrate`, and `serve` (first-start
//! token, graceful shutdown on SIGTERM with a request in flight), on SQLite and PostgreSQL.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

mod broadcast_crash;
mod instances;
mod link;
mod logs;
mod readme;

use serde_json::Value;
use wharf_testkit::{Backend, TestDb};

fn wharf(db: &TestDb, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(args)
        .arg("--database-url")
        .arg(db.url())
        .env_remove("WHARF_CONFIG")
        .current_dir(std::env::temp_dir())
        .output()
        .expect("run wharf");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json_of(stdout: &str) -> Value {
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

#[wharf_testkit::dual_test]
async fn accounts_and_keys_cli(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let (ok, out, err) = wharf(&db, &["migrate"]);
    assert!(ok, "{err}");
    assert!(out.contains("up to date"), "{out}");

    let (ok, out, err) = wharf(&db, &["accounts", "create", "--name", "Acme", "--json"]);
    assert!(ok, "{err}");
    let account = json_of(&out);
    let account_id = account["account_id"].as_str().unwrap().to_owned();
    assert!(account_id.starts_with("acc_"));
    assert!(account["pat"].as_str().unwrap().starts_with("wh_pat_"));

    let (ok, out, err) = wharf(
        &db,
        &[
            "keys",
            "create",
            "--account",
            &account_id,
            "--label",
            "ci",
            "--json",
        ],
    );
    assert!(ok, "{err}");
    let key = json_of(&out);
    let fingerprint = key["fingerprint"].as_str().unwrap().to_owned();
    assert!(key["pat"].as_str().unwrap().starts_with("wh_pat_"));

    let (ok, out, _) = wharf(&db, &["keys", "list", "--account", &account_id, "--json"]);
    assert!(ok);
    let keys = json_of(&out);
    assert_eq!(keys.as_array().unwrap().len(), 2);
    assert!(
        !out.contains("wh_pat_"),
        "raw tokens are never listed: {out}"
    );
    assert!(
        keys.as_array()
            .unwrap()
            .iter()
            .all(|k| k["kind"] == "pat" && k["revoked_at"].is_null())
    );

    let (ok, out, err) = wharf(&db, &["keys", "revoke", &fingerprint]);
    assert!(ok, "{err}");
    assert!(out.contains(&fingerprint));
    let (_, out, _) = wharf(&db, &["keys", "list", "--account", &account_id, "--json"]);
    let revoked = json_of(&out)
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["revoked_at"].is_string())
        .count();
    assert_eq!(revoked, 1);
    let (_, table, _) = wharf(&db, &["keys", "list", "--account", &account_id]);
    assert!(
        table.contains("revoked") && table.contains("active"),
        "{table}"
    );

    let (ok, _, err) = wharf(&db, &["keys", "revoke", "fp_0000000000000000"]);
    assert!(!ok && err.contains("no key"), "{err}");
    let (ok, _, err) = wharf(
        &db,
        &[
            "keys",
            "list",
            "--account",
            "acc_00000000000000000000000000",
        ],
    );
    assert!(!ok && err.contains("does not exist"), "{err}");
    let (ok, _, err) = wharf(&db, &["keys", "create", "--account", "bogus"]);
    assert!(!ok && err.contains("--account"), "{err}");
}

/// Starts `wharf serve` on a free port; returns the child, its address and what it printed
/// on stdout by the time it listened.
fn serve_on(db: &TestDb, expect_banner: bool) -> (ServerProcess, SocketAddr, String) {
    serve_with(db, expect_banner, &[])
}

/// [`serve_on`] with settings in the environment (`WHARF_…`).
fn serve_with(
    db: &TestDb,
    expect_banner: bool,
    env: &[(&str, &str)],
) -> (ServerProcess, SocketAddr, String) {
    let served = start_serve(db, &[], env, expect_banner);
    (served.child, served.addr, served.banner)
}

/// A `wharf serve` started by [`start_serve`].
struct Served {
    child: ServerProcess,
    addr: SocketAddr,
    /// What it printed on stdout by the time it listened.
    banner: String,
    /// Every line it wrote on stderr (its log), as they come.
    log: Arc<Mutex<Vec<String>>>,
}

impl Served {
    /// Stops the server cleanly (SIGTERM) and waits for it to exit.
    fn stop(&mut self) {
        terminate(&self.child);
        let _ = self.child.wait();
    }
}

/// A server process that a failing test does not leave behind: one still running when this
/// goes is killed (a test that stopped it already waited for it, so then this does nothing).
struct ServerProcess(Child);

impl std::ops::Deref for ServerProcess {
    type Target = Child;

    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for ServerProcess {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Starts `wharf serve` on a free port with more `args` and `envs` (logs at `info` unless
/// `envs` sets `RUST_LOG`), in text or JSON.
fn start_serve(db: &TestDb, args: &[&str], envs: &[(&str, &str)], expect_banner: bool) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            db.url(),
        ])
        .args(args)
        .env_remove("WHARF_CONFIG")
        .env("RUST_LOG", "info")
        .envs(envs.iter().copied())
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start wharf serve");
    let stdout_lines = Arc::new(Mutex::new(String::new()));
    let sink = stdout_lines.clone();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let mut all = sink.lock().unwrap();
            all.push_str(&line);
            all.push('\n');
        }
    });
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let log_sink = log.clone();
    std::thread::spawn(move || {
        // Keep draining stderr so the server never writes into a closed pipe.
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let addr = match serde_json::from_str::<Value>(&line) {
                Ok(json) => json["addr"].as_str().map(str::to_owned),
                Err(_) => line.split("addr=").nth(1).map(|a| a.trim().to_owned()),
            };
            if let Some(addr) = addr {
                let _ = tx.send(addr);
            }
            log_sink.lock().unwrap().push(line);
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the server reports its address");
    // The banner is printed (line by line) before the server listens; wait for the reader
    // thread to have all of it when one is expected, or briefly for none.
    let deadline =
        std::time::Instant::now() + Duration::from_secs(if expect_banner { 10 } else { 1 });
    while std::time::Instant::now() < deadline {
        if stdout_lines.lock().unwrap().contains("Use it as") {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let banner = stdout_lines.lock().unwrap().clone();
    Served {
        child: ServerProcess(child),
        addr: addr.parse().expect("an address"),
        banner,
        log,
    }
}

/// The token a first start printed.
fn token_of(banner: &str) -> String {
    banner
        .split_whitespace()
        .find(|w| w.starts_with("wh_pat_"))
        .unwrap_or_else(|| panic!("the first start prints a token: {banner}"))
        .to_owned()
}

fn terminate(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
}

#[wharf_testkit::dual_test]
async fn serve(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let (mut child, addr, banner) = serve_on(&db, true);
    let pat = banner
        .split_whitespace()
        .find(|w| w.starts_with("wh_pat_"))
        .unwrap_or_else(|| panic!("the first start prints a token: {banner}"))
        .to_owned();
    assert!(banner.contains("shown only this once"), "{banner}");

    wharf_server::install_crypto();
    let client = reqwest::Client::new();
    let ready = client
        .get(format!("http://{addr}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let list = client
        .get(format!("http://{addr}/v1/whatsapp-sessions"))
        .bearer_auth(&pat)
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), 200);

    // A request in flight: headers and half the body sent before SIGTERM, the rest after.
    let body = r#"{"label": "in flight"}"#;
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST /v1/whatsapp-sessions HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {pat}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
        body.len(),
        &body[..8]
    )
    .unwrap();
    stream.flush().unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    terminate(&child);
    tokio::time::sleep(Duration::from_millis(200)).await;
    stream.write_all(&body.as_bytes()[8..]).unwrap();
    let mut answer = String::new();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = stream.read_to_string(&mut answer);
    assert!(
        answer.starts_with("HTTP/1.1 201"),
        "the in-flight request completes: {answer}"
    );

    let status = child.wait().unwrap();
    assert!(status.success(), "graceful exit: {status:?}");

    // The second start finds the account and prints no token.
    let (child2, _, banner2) = serve_on(&db, false);
    assert!(!banner2.contains("wh_pat_"), "{banner2}");
    terminate(&child2);
    let mut child2 = child2;
    assert!(child2.wait().unwrap().success());
}

#[wharf_testkit::dual_test]
async fn sandbox_number_cli(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let store = wharf_store::Store::open(db.url()).await.expect("open");
    let (account, _) = store.create_account("operator").await.expect("account");
    let (session, _) = store
        .create_session(wharf_store::NewSession {
            account_id: account.id,
            engine: wharf_core::EngineKind::Emulator,
            label: None,
            phone_number: Some(wharf_core::Phone::parse("+15550001111").expect("phone")),
            settings: Default::default(),
        })
        .await
        .expect("session");
    let id = session.id.to_string();

    let (ok, out, err) = wharf(&db, &["sandbox", "show", "--json"]);
    assert!(ok, "{err}");
    assert!(json_of(&out)["session_id"].is_null(), "{out}");

    let (ok, out, err) = wharf(&db, &["sandbox", "set-number", &id]);
    assert!(ok, "{err}");
    assert!(out.contains(&id) && out.contains("+15550001111"), "{out}");
    assert_eq!(
        store.sandbox_number().await.expect("read"),
        Some(session.id)
    );
    let (ok, out, _) = wharf(&db, &["sandbox", "show", "--json"]);
    assert!(ok);
    let shown = json_of(&out);
    assert_eq!(shown["session_id"], id.as_str());
    assert_eq!(shown["phone_number"], "+15550001111");
    assert_eq!(shown["engine"], "emulator");

    let (ok, _, err) = wharf(&db, &["sandbox", "set-number", "sess_nope"]);
    assert!(!ok && err.contains("not a session id"), "{err}");
    let (ok, _, err) = wharf(
        &db,
        &["sandbox", "set-number", "sess_00000000000000000000000000"],
    );
    assert!(!ok && err.contains("does not exist"), "{err}");
    // A failed change leaves the number as it was.
    assert_eq!(
        store.sandbox_number().await.expect("read"),
        Some(session.id)
    );

    let (ok, _, err) = wharf(&db, &["sandbox", "clear"]);
    assert!(ok, "{err}");
    assert_eq!(store.sandbox_number().await.expect("read"), None);
}

#[wharf_testkit::dual_test]
async fn numbers_pool_cli(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let store = wharf_store::Store::open(db.url()).await.expect("open");
    let add = |args: &[&str]| {
        let mut all = vec!["numbers", "add"];
        all.extend_from_slice(args);
        wharf(&db, &all)
    };
    let (ok, out, err) = add(&[
        "+1 (212) 555-0100",
        "--country",
        "us",
        "--locality",
        "New York",
        "--meta-preverified-id",
        "106540000000001",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("+12125550100"), "{out}");
    let (ok, _, err) = add(&["+442079460958", "--country", "GB", "--area-code", "20"]);
    assert!(ok, "{err}");
    let (ok, _, err) = add(&["+12125550100", "--country", "US"]);
    assert!(!ok && err.contains("already in the pool"), "{err}");
    let (ok, _, err) = add(&["12", "--country", "US"]);
    assert!(!ok && err.contains("not a phone number"), "{err}");
    let (ok, _, err) = add(&["+13105550100", "--country", "USA"]);
    assert!(!ok && err.contains("--country"), "{err}");
    let (ok, _, err) = add(&[
        "+13105550100",
        "--country",
        "US",
        "--meta-preverified-id",
        "x1",
    ]);
    assert!(!ok && err.contains("--meta-preverified-id"), "{err}");

    let (ok, out, err) = wharf(&db, &["numbers", "list", "--json"]);
    assert!(ok, "{err}");
    let pool = json_of(&out);
    let pool = pool.as_array().expect("a list");
    assert_eq!(pool.len(), 2);
    assert_eq!(pool[0]["phone_number"], "+12125550100");
    assert_eq!(pool[0]["country"], "US");
    assert_eq!(pool[0]["area_code"], "212", "derived for +1 numbers");
    assert_eq!(pool[0]["locality"], "New York");
    assert_eq!(pool[0]["meta_preverified_id"], "106540000000001");
    assert!(pool[0]["assigned_to"].is_null());
    assert_eq!(pool[1]["area_code"], "20");

    // A number an account holds cannot be removed.
    let (account, _) = store.create_account("buyer").await.expect("account");
    let now = wharf_core::time::now_millis();
    let claim = store
        .claim_pool_number(
            5,
            None,
            wharf_store::PhoneNumberRow {
                id: wharf_core::PhoneNumberId::generate(),
                account_id: account.id,
                phone_number: String::new(),
                country: String::new(),
                source: "pool".into(),
                provider_order_id: None,
                status: wharf_store::NumberStatus::Active,
                profile_id: Some("p".into()),
                meta_preverified_id: None,
                meta_verification_status: None,
                meta_verified_at: None,
                meta_verification_expires_at: None,
                provisioned_at: Some(now),
                released_at: None,
                created_at: now,
                updated_at: now,
            },
        )
        .await
        .expect("claim");
    let held = match claim {
        wharf_store::Claim::Done(held) => *held,
        other => panic!("not claimed: {other:?}"),
    };
    assert_eq!(held.phone_number, "+12125550100");
    let (ok, table, _) = wharf(&db, &["numbers", "list"]);
    assert!(ok);
    assert!(
        table.contains(&format!("assigned to {}", held.id)) && table.contains("available"),
        "{table}"
    );
    let (ok, _, err) = wharf(&db, &["numbers", "remove", "+12125550100"]);
    assert!(!ok && err.contains(&held.id.to_string()), "{err}");

    let (ok, out, err) = wharf(&db, &["numbers", "remove", "+44 20 7946 0958"]);
    assert!(ok, "{err}");
    assert!(out.contains("removed"), "{out}");
    let (ok, _, err) = wharf(&db, &["numbers", "remove", "+442079460958"]);
    assert!(!ok && err.contains("not in the pool"), "{err}");
    assert_eq!(store.pool_numbers().await.expect("pool").len(), 1);
}

/// `RssAnon` of a process in KiB (`/proc/PID/status`): the memory it allocated itself (heap,
/// stacks, arenas), without the binary's file-backed pages.
fn rss_anon_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no RssAnon in {status}"))
}

/// The idle footprint guard (issue 20): a ready, idle `wharf serve` on an empty database
/// keeps its anonymous memory under a generous ceiling. The figure does not depend on the
/// machine's speed; what pushes it over is an eager allocation at start (an allocator that
/// commits its arenas, a queue or pool allocated up front, a thread per something).
#[wharf_testkit::dual_test]
async fn idle_footprint_guard(backend: Backend) {
    /// Above what an idle server takes, and well under what the eager allocation this guards
    /// against took: with mimalloc's arenas committed eagerly the debug build held 21.3-23.5 MB
    /// (SQLite) and 16.1 MB (PostgreSQL), so the 30 MB first planned would not have caught it.
    /// The debug build this suite runs read 6.7 MiB (SQLite) and 5.0 MiB (PostgreSQL) when the
    /// guard was written (release 6.0-6.2 MiB); with the dashboard, metrics, broadcasts and the
    /// web engine's media and social parts it reads 10.8-11.5 MiB on SQLite (9.4 MiB before
    /// them, same machine, same reading), so the ceiling moved from 12 MB to 13 MB. With
    /// session leases (a lease pass before the first request, on the writer's connection, and
    /// the lease worker, listener and wake-up tasks) it read 12.5-12.9 MiB on 2026-12-03's
    /// machine, at the old ceiling: 14 MB, still far under the eager 21-23 MB.
    const CEILING_KIB: u64 = 14 * 1000 * 1000 / 1024;
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let (mut child, addr, _) = serve_on(&db, true);
    wharf_server::install_crypto();
    let client = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..300 {
        if let Ok(resp) = client.get(format!("http://{addr}/readyz")).send().await
            && resp.status() == 200
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "the server never answered /readyz with 200");
    // Idle: a few readings over two seconds (background workers wake meanwhile), the
    // largest counts.
    let mut largest = 0;
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        largest = largest.max(rss_anon_kib(child.id()));
    }
    terminate(&child);
    assert!(child.wait().unwrap().success());
    eprintln!("idle RssAnon: {largest} KiB");
    assert!(
        largest <= CEILING_KIB,
        "an idle server holds {largest} KiB of anonymous memory, over the {CEILING_KIB} KiB \
         (14 MB) ceiling: something is allocated eagerly at start"
    );
}

/// SQLite serves one instance: a second `wharf serve` of the same file refuses to start,
/// naming the running one, while CLI commands still work beside it; once the first stops,
/// the file can be served again.
#[tokio::test]
async fn a_second_serve_of_one_sqlite_file_refuses_to_start() {
    let Some(db) = TestDb::create(Backend::Sqlite).await else {
        return;
    };
    let (first, _, _) = serve_on(&db, true);
    let mut second = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            db.url(),
        ])
        .env_remove("WHARF_CONFIG")
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run a second wharf serve");
    // It must stop on its own, at once; one still running after 20 s is serving.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            second.kill().ok();
            panic!("a second wharf serve of the same SQLite file started");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    second
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!status.success(), "the second server ran: {err}");
    assert!(
        err.contains(&format!("another wharf serve (pid {})", first.id()))
            && err.contains("PostgreSQL"),
        "{err}"
    );
    // The CLI is not a server: it works while one runs.
    let (ok, out, err) = wharf(&db, &["accounts", "create", "--name", "Beside", "--json"]);
    assert!(ok, "{err}");
    assert!(json_of(&out)["account_id"].is_string(), "{out}");
    terminate(&first);
    let mut first = first;
    assert!(first.wait().unwrap().success());
    let (again, _, _) = serve_on(&db, false);
    terminate(&again);
    let mut again = again;
    assert!(again.wait().unwrap().success());
}
