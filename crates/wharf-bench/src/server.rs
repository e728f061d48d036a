//! A `wharf serve` child process on a free port with a fresh database.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

/// A running server.
pub struct Server {
    child: Child,
    addr: String,
    /// The first-start token the server printed, when the database was empty.
    pub pat: Option<String>,
    /// From spawning the process to the first successful `GET /readyz`.
    pub ready_after: Duration,
    dir: Option<PathBuf>,
}

impl Server {
    /// Starts a server; a fresh SQLite file unless `database_url` is given.
    pub async fn start(
        bin: &Path,
        database_url: Option<&str>,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let addr = format!("127.0.0.1:{port}");
        let (dir, url) = match database_url {
            Some(url) => (None, url.to_owned()),
            None => {
                let dir =
                    std::env::temp_dir().join(format!("wharf-bench-{}-{port}", std::process::id()));
                std::fs::create_dir_all(&dir)?;
                let url = format!("sqlite://{}", dir.join("wharf.db").display());
                (Some(dir), url)
            }
        };
        let started = Instant::now();
        let mut child = Command::new(bin)
            .args([
                "serve",
                "--listen",
                &addr,
                "--database-url",
                &url,
                "--log",
                "warn",
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(token) = line.split_whitespace().find(|w| w.starts_with("wh_pat_")) {
                    let _ = tx.send(token.to_owned());
                }
            }
        });
        let client = reqwest::Client::new();
        let ready = format!("http://{addr}/readyz");
        let deadline = started + Duration::from_secs(30);
        loop {
            if let Ok(resp) = client.get(&ready).send().await
                && resp.status().is_success()
            {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the server was not ready within 30 s"
            );
            if let Some(status) = child.try_wait()? {
                anyhow::bail!("the server exited: {status}");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let ready_after = started.elapsed();
        let pat = rx.recv_timeout(Duration::from_millis(200)).ok();
        Ok(Self {
            child,
            addr,
            pat,
            ready_after,
            dir,
        })
    }

    /// `http://ADDR` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Resident memory of the server process, in KiB.
    pub fn rss_kib(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("no VmRSS in /proc status"))
    }

    /// Stops the server with SIGTERM and waits for it.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        let status = self.child.wait()?;
        anyhow::ensure!(status.success(), "the server exited with {status}");
        if let Some(dir) = self.dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
        Ok(())
    }
}
