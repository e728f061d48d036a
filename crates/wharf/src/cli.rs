//! The command line: `serve`, `migrate`, `accounts`, `keys`, `sandbox`, `numbers`,
//! `sessions link`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use wharf_core::{AccountId, time::rfc3339};
use wharf_server::{Config, redact_url};
use wharf_store::Store;

use crate::config::{FlagOverrides, load};

/// Wharf: a self-hosted WhatsApp API gateway.
#[derive(Debug, Parser)]
#[command(name = "wharf", version, about)]
pub struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct GlobalArgs {
    /// TOML configuration file (default: ./wharf.toml when present). Also WHARF_CONFIG.
    #[arg(long, global = true, env = "WHARF_CONFIG")]
    config: Option<PathBuf>,
    /// sqlite://PATH or postgres://URL (default sqlite://./data/wharf.db). Also WHARF_DATABASE_URL.
    #[arg(long, global = true)]
    database_url: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway.
    Serve(ServeArgs),
    /// Bring the database schema up to date, then exit.
    Migrate,
    /// Manage accounts (tenants).
    #[command(subcommand)]
    Accounts(AccountsCommand),
    /// Manage personal access tokens.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage the shared sandbox number.
    #[command(subcommand)]
    Sandbox(SandboxCommand),
    /// Manage the pool of phone numbers accounts purchase from (Zernio Business API).
    #[command(subcommand)]
    Numbers(crate::numbers::NumbersCommand),
    /// List the live instances sharing the database, the sessions each owns (by lease, with
    /// its generation and age) and the running sessions no live instance owns yet.
    Instances {
        #[arg(long)]
        json: bool,
    },
    /// Work with sessions of a running server (over its HTTP API).
    #[command(subcommand)]
    Sessions(SessionsCommand),
}

#[derive(Debug, Subcommand)]
enum SessionsCommand {
    /// Link a phone to a session: connects it if needed, prints the QR code in the terminal
    /// (again each time it rotates) and waits until the phone has linked it. Exits 0 once the
    /// session is connected, 1 with the reason when it stops or the wait times out.
    Link(LinkArgs),
}

#[derive(Debug, Args)]
struct LinkArgs {
    /// The session (sess_…).
    session_id: String,
    /// The running server's base URL. Also WHARF_URL.
    #[arg(long, env = "WHARF_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// A personal access token of the session's account, or the session's key. Also
    /// WHARF_TOKEN.
    #[arg(long, env = "WHARF_TOKEN", hide_env_values = true)]
    token: String,
    /// Also ask for a pair code for this phone number (typed on the phone instead of
    /// scanning; web sessions only).
    #[arg(long, value_name = "PHONE")]
    pair_code: Option<String>,
    /// Give up after this many seconds without a link (the session keeps running).
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
    /// How often the session is polled, in milliseconds.
    #[arg(long, default_value_t = 1000, hide = true)]
    poll_ms: u64,
    /// Draw dark modules as blocks (terminals with a light background).
    #[arg(long)]
    invert: bool,
}

#[derive(Debug, Subcommand)]
enum SandboxCommand {
    /// Make a session the shared sandbox number (any engine; it should be connected). Takes
    /// effect at once, also on a running server.
    SetNumber {
        /// The session (sess_…).
        session_id: String,
    },
    /// Show the sandbox number.
    Show {
        #[arg(long)]
        json: bool,
    },
    /// Stop offering a sandbox number.
    Clear,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on (default 127.0.0.1:8080). Also WHARF_LISTEN.
    #[arg(long)]
    listen: Option<String>,
    /// Engine for sessions created without one: emulator, cloud or web.
    #[arg(long)]
    default_engine: Option<String>,
    /// Do not mount the emulator's control surface (/emulator/...).
    #[arg(long)]
    no_emulator_control: bool,
    /// Requests per minute allowed to each account (default 600).
    #[arg(long)]
    rate_limit_per_minute: Option<u32>,
    /// This instance's name, shown as the worker_id of its sessions.
    #[arg(long)]
    instance_id: Option<String>,
    /// Log filter, RUST_LOG syntax (default info).
    #[arg(long)]
    log: Option<String>,
    /// Log lines as `text` (default) or `json` (one object a line). Also WHARF_LOG_FORMAT.
    #[arg(long, value_name = "text|json")]
    log_format: Option<String>,
}

#[derive(Debug, Subcommand)]
enum AccountsCommand {
    /// Create an account with its first personal access token.
    Create {
        /// A name for the account.
        #[arg(long)]
        name: String,
        /// Print {"account_id", "pat"} as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a personal access token for an account (printed once).
    Create {
        #[arg(long)]
        account: String,
        /// A note to tell keys apart.
        #[arg(long)]
        label: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List an account's keys (fingerprints only, revoked ones included).
    List {
        #[arg(long)]
        account: String,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by fingerprint; it stops working at once.
    Revoke {
        /// The key's fingerprint (fp_…).
        fingerprint: String,
    },
}

/// Runs the parsed command.
pub async fn execute(cli: Cli) -> anyhow::Result<()> {
    // Clients of a running server: no database, no server configuration.
    let command = match cli.command {
        Command::Sessions(SessionsCommand::Link(args)) => return link(args).await,
        other => other,
    };
    let mut flags = FlagOverrides {
        database_url: cli.global.database_url,
        ..Default::default()
    };
    if let Command::Serve(args) = &command {
        flags.listen = args.listen.clone();
        flags.default_engine = args.default_engine.clone();
        flags.emulator_control = args.no_emulator_control.then_some(false);
        flags.rate_limit_per_minute = args.rate_limit_per_minute;
        flags.instance_id = args.instance_id.clone();
        flags.log = args.log.clone();
        flags.log_format = args.log_format.clone();
    }
    let config = load(cli.global.config, flags)?;
    crate::logs::init(&config.log, config.log_format);
    // Held until the server stops; taken before the database is opened.
    let _single = match &command {
        Command::Serve(_) => single_instance(&config.database_url)?,
        _ => None,
    };
    let store = open_store(&config).await?;
    match command {
        Command::Serve(_) => serve(config, store).await,
        Command::Migrate => {
            println!(
                "database is up to date ({})",
                redact_url(&config.database_url)
            );
            Ok(())
        }
        Command::Accounts(AccountsCommand::Create { name, json }) => {
            anyhow::ensure!(!name.trim().is_empty(), "--name must not be empty");
            let (account, token) = store.create_account(name.trim()).await?;
            if json {
                println!("{}", json!({ "account_id": account.id, "pat": token.raw }));
            } else {
                println!(
                    "account: {}\npersonal access token (shown once): {}",
                    account.id, token.raw
                );
            }
            Ok(())
        }
        Command::Keys(cmd) => keys(&store, cmd).await,
        Command::Sandbox(cmd) => sandbox(&store, cmd).await,
        Command::Numbers(cmd) => crate::numbers::run(&store, cmd).await,
        Command::Instances { json } => crate::instances::run(&store, json).await,
        Command::Sessions(_) => unreachable!("handled before the store is opened"),
    }
}

async fn link(args: LinkArgs) -> anyhow::Result<()> {
    anyhow::ensure!(!args.token.trim().is_empty(), "--token must not be empty");
    wharf_server::install_crypto();
    let phone = crate::link::link(crate::link::LinkArgs {
        url: args.url,
        token: args.token.trim().to_owned(),
        session_id: args.session_id.clone(),
        pair_code: args.pair_code,
        timeout: std::time::Duration::from_secs(args.timeout_secs),
        poll: std::time::Duration::from_millis(args.poll_ms.max(50)),
        invert: args.invert,
    })
    .await?;
    println!(
        "linked: session {} is connected as {phone}",
        args.session_id
    );
    Ok(())
}

async fn sandbox(store: &Store, cmd: SandboxCommand) -> anyhow::Result<()> {
    let now = wharf_core::time::now_millis();
    match cmd {
        SandboxCommand::SetNumber { session_id } => {
            let id: wharf_core::SessionId = session_id
                .parse()
                .map_err(|_| anyhow::anyhow!("{session_id} is not a session id (sess_…)"))?;
            let row = store
                .find_session_any_account(id)
                .await?
                .filter(|row| !row.status.is_deleting())
                .with_context(|| format!("session {id} does not exist or is being deleted"))?;
            store.set_sandbox_number(Some(id), now).await?;
            let phone = row
                .phone_number
                .as_ref()
                .map(|p| p.e164().to_owned())
                .unwrap_or_else(|| "no number yet".into());
            println!(
                "sandbox number: session {id} ({} engine, {}, {phone})",
                row.engine,
                row.status.as_str()
            );
            if row.phone_number.is_none() {
                println!(
                    "note: the session has not connected yet; the sandbox is unavailable until it has a number"
                );
            }
        }
        SandboxCommand::Show { json } => {
            let current = match store.sandbox_number().await? {
                Some(id) => store.find_session_any_account(id).await?,
                None => None,
            };
            match (current, json) {
                (None, true) => println!("{}", json!({ "session_id": null })),
                (None, false) => println!("no sandbox number is set"),
                (Some(row), true) => println!(
                    "{}",
                    json!({
                        "session_id": row.id,
                        "engine": row.engine.as_str(),
                        "status": row.status.as_str(),
                        "phone_number": row.phone_number.as_ref().map(|p| p.e164().to_owned()),
                    })
                ),
                (Some(row), false) => println!(
                    "sandbox number: session {} ({} engine, {}, {})",
                    row.id,
                    row.engine,
                    row.status.as_str(),
                    row.phone_number
                        .as_ref()
                        .map(|p| p.e164().to_owned())
                        .unwrap_or_else(|| "no number yet".into())
                ),
            }
        }
        SandboxCommand::Clear => {
            store.set_sandbox_number(None, now).await?;
            println!("no sandbox number is set");
        }
    }
    Ok(())
}

/// Every command that touches the store migrates first.
async fn open_store(config: &Config) -> anyhow::Result<Store> {
    Store::open(&config.database_url).await.with_context(|| {
        format!(
            "cannot open the database at {}",
            redact_url(&config.database_url)
        )
    })
}

async fn account(store: &Store, raw: &str) -> anyhow::Result<AccountId> {
    let id: AccountId = raw
        .parse()
        .map_err(|_| anyhow::anyhow!("--account: {raw} is not an account id (acc_…)"))?;
    store
        .get_account(id)
        .await?
        .with_context(|| format!("account {id} does not exist"))?;
    Ok(id)
}

async fn keys(store: &Store, cmd: KeysCommand) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::Create {
            account: raw,
            label,
            json,
        } => {
            let id = account(store, &raw).await?;
            let (key, token) = store.create_pat(id, label).await?;
            if json {
                println!(
                    "{}",
                    json!({ "account_id": id, "fingerprint": key.fingerprint, "pat": token.raw })
                );
            } else {
                println!(
                    "fingerprint: {}\npersonal access token (shown once): {}",
                    key.fingerprint, token.raw
                );
            }
        }
        KeysCommand::List { account: raw, json } => {
            let id = account(store, &raw).await?;
            let keys = store.list_keys(id).await?;
            if json {
                let rows: Vec<_> = keys
                    .iter()
                    .map(|k| {
                        json!({
                            "fingerprint": k.fingerprint,
                            "kind": k.kind.as_str(),
                            "session_id": k.session_id,
                            "label": k.label,
                            "created_at": rfc3339(k.created_at),
                            "revoked_at": k.revoked_at.map(rfc3339),
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(rows));
            } else {
                println!(
                    "{:<20} {:<8} {:<32} {:<25} STATUS",
                    "FINGERPRINT", "KIND", "SESSION", "CREATED"
                );
                for k in keys {
                    let session = k
                        .session_id
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "-".into());
                    let status = if k.revoked_at.is_some() {
                        "revoked"
                    } else {
                        "active"
                    };
                    println!(
                        "{:<20} {:<8} {:<32} {:<25} {status}",
                        k.fingerprint,
                        k.kind.as_str(),
                        session,
                        rfc3339(k.created_at)
                    );
                }
            }
        }
        KeysCommand::Revoke { fingerprint } => match store.revoke_key(&fingerprint).await? {
            Some(_) => println!("revoked {fingerprint}"),
            None => anyhow::bail!("no key has the fingerprint {fingerprint}"),
        },
    }
    Ok(())
}

/// On SQLite, makes sure this is the only `wharf serve` of the database: an exclusive lock
/// on `<database>-wharf.lock`, held as long as the returned file is open (the system drops it
/// when the process ends, however it ends). Another server of the same file refuses to start
/// and names the one running: two would each resume every session and dispatch every outbox,
/// sending messages twice. CLI commands (accounts, keys, numbers) do not take it and work
/// beside a running server. PostgreSQL needs none (many instances may share it).
fn single_instance(database_url: &str) -> anyhow::Result<Option<std::fs::File>> {
    use std::io::{Read, Seek, Write};
    let Some(db) = wharf_store::sqlite_path(database_url) else {
        return Ok(None);
    };
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut name = db.clone().into_os_string();
    name.push("-wharf.lock");
    let path = std::path::PathBuf::from(name);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let who = if holder.is_empty() {
                "another wharf serve".to_owned()
            } else {
                format!("another wharf serve (pid {holder})")
            };
            anyhow::bail!(
                "{who} is already using the SQLite database {}: SQLite serves one instance \
                 only (two would both send every queued message). Stop that one first, or run \
                 several instances on one PostgreSQL database (database_url = postgres://…).",
                db.display()
            );
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("cannot lock {}", path.display()));
        }
    }
    file.set_len(0)?;
    file.rewind()?;
    write!(file, "{}", std::process::id())?;
    file.flush()?;
    Ok(Some(file))
}

async fn serve(config: Config, store: Store) -> anyhow::Result<()> {
    if store.count_accounts().await? == 0 {
        let (account, token) = store.create_account("default").await?;
        println!("================ Wharf: first start ================");
        println!("Created account {} (\"default\").", account.id);
        println!("Its personal access token, shown only this once:");
        println!("  {}", token.raw);
        println!("Use it as 'Authorization: Bearer <token>' or 'X-API-Key: <token>'.");
        println!("=====================================================");
    }
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let shutdown = CancellationToken::new();
    tokio::spawn(wait_for_signal(shutdown.clone()));
    wharf_server::run_with_store(config, store, listener, shutdown).await
}

async fn wait_for_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM");
                    let _ = ctrl_c.await;
                    shutdown.cancel();
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down: finishing in-flight requests");
    shutdown.cancel();
}
