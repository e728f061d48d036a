//! The README's first five minutes, run as written: the blocks marked
//! `<!-- readme-test: NAME -->` start the webhook receiver and the gateway, then the
//! walk-through's shell block runs with bash against them, and the receiver must print the
//! message's webhooks.
//!
//! What is substituted, and nothing else: the token the server printed for `wh_pat_...`, the
//! server's free port for `127.0.0.1:8080` and the receiver's free port for `9000`.
//! `cargo run --release -p wharf -- serve` is run as this crate's `wharf` binary with `serve`
//! (the same program; building a release binary here would take minutes), on a fresh database.
//!
//! Needs `bash`, `curl`, `jq` and `python3`, as the README says: without them the test skips,
//! except under CI (`CI` set), where it fails.

use std::{
    io::{BufRead, BufReader},
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use wharf_testkit::{Backend, TestDb};

use super::{start_serve, terminate, token_of};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The shell block after `<!-- readme-test: NAME -->`.
fn block(readme: &str, name: &str) -> String {
    let marker = format!("<!-- readme-test: {name} -->\n```sh\n");
    let start = readme
        .find(&marker)
        .unwrap_or_else(|| panic!("README.md has no block marked {name}"))
        + marker.len();
    let end = start + readme[start..].find("```").expect("the block's end");
    readme[start..end].to_owned()
}

/// `text` with `from` replaced by `to`; `from` must be there.
fn substitute(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "the README block no longer has {from}");
    text.replace(from, to)
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

#[wharf_testkit::dual_test]
async fn the_readme_first_five_minutes_run_as_written(backend: Backend) {
    let missing: Vec<&str> = ["bash", "curl", "jq", "python3"]
        .into_iter()
        .filter(|t| !have(t))
        .collect();
    if !missing.is_empty() {
        assert!(
            std::env::var_os("CI").is_none(),
            "the README's commands need {missing:?}"
        );
        eprintln!("skipped: the README's commands need {missing:?}");
        return;
    }
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    assert!(
        readme
            .contains("```sh\ncargo run --release -p wharf -- serve\ncargo test --workspace\n```"),
        "the two set-up commands changed: update this test"
    );

    // The receiver, as written, on a free port.
    let port = free_port().to_string();
    let receiver_block = substitute(block(&readme, "receiver").trim(), "9000", &port);
    let argv: Vec<&str> = receiver_block.split_whitespace().collect();
    let mut receiver = Command::new(argv[0])
        .args(&argv[1..])
        .current_dir(repo_root())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the webhook receiver");
    let printed = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = printed.clone();
    let stdout = receiver.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });

    // The gateway: `ENV=… cargo run --release -p wharf -- serve`.
    let serve_block = block(&readme, "serve");
    let words: Vec<&str> = serve_block.split_whitespace().collect();
    let envs: Vec<(&str, &str)> = words.iter().map_while(|w| w.split_once('=')).collect();
    assert_eq!(
        &words[envs.len()..],
        ["cargo", "run", "--release", "-p", "wharf", "--", "serve"],
        "the README starts the gateway otherwise: update this test"
    );
    let served = start_serve(&db, &[], &envs, true);
    let pat = token_of(&served.banner);

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !printed
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.starts_with("waiting for webhooks"))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the receiver never started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The walk-through, with bash, stopping at the first failing command.
    let mut script = block(&readme, "walkthrough");
    script = substitute(&script, "PAT=wh_pat_...", &format!("PAT={pat}"));
    script = substitute(
        &script,
        "http://127.0.0.1:8080",
        &format!("http://{}", served.addr),
    );
    script = substitute(&script, "127.0.0.1:9000", &format!("127.0.0.1:{port}"));
    let walked = tokio::task::spawn_blocking(move || {
        Command::new("bash")
            .args(["-euo", "pipefail", "-c", &script])
            .current_dir(repo_root())
            .output()
            .expect("run bash")
    })
    .await
    .unwrap();
    let out = String::from_utf8_lossy(&walked.stdout).into_owned();
    let err = String::from_utf8_lossy(&walked.stderr).into_owned();
    assert!(
        walked.status.success(),
        "the walk-through failed:\n{out}\n{err}"
    );
    assert!(out.contains("\"read\""), "the message was read: {out}");
    for kind in ["message.sent", "message.read", "message.received"] {
        assert!(out.contains(kind), "the event log lists {kind}: {out}");
    }

    // The receiver printed the message's webhooks.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    for kind in [
        "message.sent",
        "message.delivered",
        "message.read",
        "message.received",
    ] {
        while !printed
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.starts_with(&format!("{kind} {{")))
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the receiver never printed {kind}: {:#?}",
                printed.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let _ = receiver.kill();
    let _ = receiver.wait();
    terminate(&served.child);
    let mut child = served.child;
    assert!(child.wait().unwrap().success());
}
