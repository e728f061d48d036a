//! A `wharf serve` child process on a free port, on a fresh database (or a given one), that
//! can be stopped gracefully, killed with SIGKILL, and started again on the same database.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

/// What to start: the binary, the database, the port and extra settings. Owns the temporary
/// directory of a fresh SQLite database and removes it when dropped, so it must outlive the
/// servers started from it.
pub struct Spec {
    bin: PathBuf,
    url: String,
    addr: String,
    env: Vec<(String, String)>,
    extra: Vec<String>,
    dir: Option<PathBuf>,
}

impl Spec {
    /// A fresh SQLite database in a temporary directory unless `database_url` is given.
    pub fn new(bin: &Path, database_url: Option<&str>) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
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
        Ok(Self {
            bin: bin.to_owned(),
            url,
            addr: format!("127.0.0.1:{port}"),
            // The webhook receivers listen on loopback, which the outbound policy refuses
            // unless allowed.
            env: vec![("WHARF_OUTBOUND_ALLOW".into(), "[\"127.0.0.0/8\"]".into())],
            extra: Vec::new(),
            dir,
        })
    }

    /// Sets `WHARF_<KEY>` for the server.
    pub fn env(mut self, key: &str, value: impl ToString) -> Self {
        self.env
            .push((format!("WHARF_{}", key.to_uppercase()), value.to_string()));
        self
    }

    /// Adds command-line flags.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.extra.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// The database the server runs on.
    pub fn database_url(&self) -> &str {
        &self.url
    }

    /// Starts the server and waits until it is ready.
    pub async fn start(&self) -> anyhow::Result<Server> {
        let started = Instant::now();
        let mut child = Command::new(&self.bin)
            .args([
                "serve",
                "--listen",
                &self.addr,
                "--database-url",
                &self.url,
                "--log",
                "warn",
            ])
            .args(&self.extra)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
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
        let ready = format!("http://{}/readyz", self.addr);
        let deadline = started + Duration::from_secs(60);
        loop {
            if let Ok(resp) = client.get(&ready).send().await
                && resp.status().is_success()
            {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the server was not ready within 60 s"
            );
            if let Some(status) = child.try_wait()? {
                anyhow::bail!("the server exited: {status}");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let ready_after = started.elapsed();
        let pat = rx.recv_timeout(Duration::from_millis(200)).ok();
        Ok(Server {
            child,
            addr: self.addr.clone(),
            pat,
            ready_after,
        })
    }
}

impl Drop for Spec {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A running server.
pub struct Server {
    child: Child,
    addr: String,
    /// The first-start token the server printed, when the database was empty.
    pub pat: Option<String>,
    /// From spawning the process to the first successful `GET /readyz`.
    pub ready_after: Duration,
}

impl Drop for Server {
    fn drop(&mut self) {
        // A scenario that ends early (an error) must not leave its server running.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Server {
    /// `http://ADDR` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory of the server process, in KiB.
    pub fn rss_kib(&self) -> anyhow::Result<u64> {
        Ok(self.memory()?.rss)
    }

    /// Resident memory of the server process (`/proc/PID/status`).
    pub fn memory(&self) -> anyhow::Result<Memory> {
        Memory::of(self.child.id())
    }

    /// Stops the server with SIGTERM and waits for it.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        let status = self.child.wait()?;
        anyhow::ensure!(status.success(), "the server exited with {status}");
        Ok(())
    }

    /// Kills the server with SIGKILL: no shutdown, no flush, as in a crash.
    pub fn kill9(mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

/// Resident memory of a process, in KiB, as `/proc/PID/status` gives it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    /// `VmRSS`: all resident pages.
    pub rss: u64,
    /// `RssAnon`: heap, stacks and other anonymous memory (what the process allocated).
    pub anon: u64,
    /// `RssFile`: file-backed pages (mostly the binary's own code and data).
    pub file: u64,
}

impl Memory {
    pub fn of(pid: u32) -> anyhow::Result<Self> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let field = |name: &str| -> anyhow::Result<u64> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .ok_or_else(|| anyhow::anyhow!("no {name} in /proc/{pid}/status"))
        };
        Ok(Self {
            rss: field("VmRSS:")?,
            anon: field("RssAnon:")?,
            file: field("RssFile:")?,
        })
    }

    /// "VmRSS 19.4 MiB (RssAnon 5.9 MiB, RssFile 13.5 MiB)".
    pub fn describe(&self) -> String {
        format!(
            "VmRSS {:.1} MiB (RssAnon {:.1} MiB, RssFile {:.1} MiB)",
            mib(self.rss),
            mib(self.anon),
            mib(self.file)
        )
    }
}

/// KiB to MiB.
pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}
