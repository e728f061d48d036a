//! Wharf's store: the only code that speaks SQL.
//!
//! One set of repositories serves SQLite and PostgreSQL through sqlx's `Any` driver with
//! portable SQL (`$n` placeholders, `RETURNING`, integer-millisecond timestamps). On SQLite,
//! writes go through a single-connection pool so writers queue in the process instead of
//! failing with `SQLITE_BUSY`; reads use their own pool (WAL lets them run beside the writer).

/// Text reported by engines, receivers or providers, as a column of plain text can hold it:
/// PostgreSQL refuses the NUL character in text (SQLite would store it), so each becomes
/// U+FFFD. Client input never gets here with one (the API refuses it); this keeps what others
/// said from failing a write.
pub(crate) fn plain(text: &Option<String>) -> Option<String> {
    text.as_deref().map(plain_str)
}

/// As [`plain`], for text that is always there.
pub(crate) fn plain_str(text: &str) -> String {
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}")
    } else {
        text.to_owned()
    }
}

mod accounts;
mod allowances;
mod authcache;
mod broadcasts;
mod cloud;
mod contacts;
mod event_payload;
mod events;
mod failures;
mod gauges;
mod keys;
mod leases;
mod message_rows;
mod messages;
mod numbers;
mod operations;
mod pool;
mod retention;
mod sandbox;
mod sessions;
mod signals;
mod templates;
mod wa_contacts;
mod web_contacts;
pub mod web_device;
mod webhooks;

use std::{path::Path, str::FromStr};

pub use accounts::AccountRow;
pub use allowances::{Grant, Rate};
pub use broadcasts::{
    BatchItem, BatchOutcome, BroadcastRow, BroadcastStatus, NewRecipient, RECIPIENT_STATUSES,
    RecipientRow, RecipientsAdded, Transition,
};
pub use cloud::{CloudCredentials, CloudRow, CloudSessionState, StatusReport, TemplateStatusRow};
pub use contacts::{ContactPage, ContactQuery, ContactRow, GroupCount, GroupSummary};
pub use events::{EventRow, MESSAGE_EVENTS_SQL};
pub use failures::Failures;
pub use gauges::Gauges;
pub use keys::{KeyRow, NewKey};
pub use leases::{Fence, InstanceRow, Lease, LeaseRow};
pub use messages::{
    Accepted, IdempotentAnswer, InboundChange, JobAction, JobOutcome, MessageFilter, MessageRow,
    OutboxJob, SandboxIngest,
};
pub use numbers::{
    Claim, NumberStatus, PhoneNumberRow, PoolAdd, PoolNumberRow, PoolRemoval, PoolSearch, Release,
};
pub use operations::OperationRow;
use pool::Pool;
pub use pool::{PoolStats, REWIND_BOUNDS, RewindStats};
pub use retention::{JobLease, Pruned};
pub use sandbox::{
    AgentEdit, AgentRow, PutSandbox, SandboxDialect, SandboxRow, SandboxStatus, SandboxWrite,
};
pub use sessions::{NewSession, SessionFilter, SessionRow};
pub use signals::Signal;
use sqlx::{any::AnyConnectOptions, migrate::Migrator};
pub use templates::TemplateRow;
pub use wa_contacts::ContactNameRow;
pub use web_contacts::WebContactRow;
pub use web_device::WebDeviceStore;
pub use webhooks::{
    AttemptResult, AttemptRow, DeliveryJob, DeliveryRow, DeliveryStatus, WebhookEdit, WebhookRow,
};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// Run on every SQLite connection. Statement journals (a multi-row insert inside a
/// transaction keeps one) stay in memory instead of a temporary file.
const SQLITE_SETUP: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
     PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;";

/// The writer connection's: it leaves checkpoints to the checkpointer (copying the WAL
/// into the database file, and its fsync, held up every commit that triggered one), and
/// keeps up to 8 MiB of pages in its cache (the index pages it writes to; SQLite's default
/// is 2 MiB). A WAL file that grew past 64 MiB is trimmed back when it starts over.
pub(crate) const SQLITE_WRITER_SETUP: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
     PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY; \
     PRAGMA wal_autocheckpoint = 0; PRAGMA cache_size = -8192; PRAGMA journal_size_limit = 67108864;";

/// The database behind a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A store failure. Database outages stay database errors all the way up: they are never
/// turned into "not found".
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL is not one Wharf can use.
    #[error("unsupported database URL: {0}")]
    BadUrl(String),
    /// A uniqueness rule was broken.
    #[error("conflict: {0}")]
    Conflict(String),
    /// Stored data that cannot be read back (a bug or a hand-edited row).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The database failed or could not be reached.
    #[error(transparent)]
    Database(sqlx::Error),
    /// SQLite failed a call the store made on it directly (the group commit of sends).
    #[error("SQLite: {0}")]
    Sqlite(String),
    /// A send made with cached credentials found them changed at commit time and wrote
    /// nothing; decide it again from fresh reads.
    #[error("the key or session changed since it was read")]
    Stale,
    /// A write fenced by a session lease found the lease held by another instance or at a
    /// later generation, and wrote nothing: this instance no longer owns the session.
    #[error("lease lost: {0}")]
    Fenced(String),
    /// Migrations failed.
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for StoreError {
    /// Every database error the store returns passes here, so the pool learns of a
    /// connection that failed (see `pool::note_error`).
    fn from(error: sqlx::Error) -> Self {
        pool::note_error(&error);
        Self::Database(error)
    }
}

/// Result alias for store calls.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A handle on the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    write: Pool,
    read: Pool,
    backend: Backend,
    /// Bumped after every commit that appended events, so readers of the log (webhook
    /// fan-out, event streams) wake without polling. In-process only.
    appended: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
    /// The group-commit task of sends, started on first use.
    ingest: std::sync::Arc<std::sync::OnceLock<tokio::sync::mpsc::Sender<messages::PendingAccept>>>,
    /// Keys and sessions of the send path (see `authcache`).
    auth: std::sync::Arc<authcache::AuthCache>,
    /// Pages of contact searches (see `contacts::SearchCache`).
    contact_search: std::sync::Arc<contacts::SearchCache>,
    contact_anchors: std::sync::Arc<contacts::Anchors>,
    /// The group commit of contact imports on SQLite, started on first use and again if it
    /// stopped (see `contacts::import`).
    imports: std::sync::Arc<
        std::sync::Mutex<Option<tokio::sync::mpsc::Sender<contacts::PendingImport>>>,
    >,
    /// Transactions of that group commit that wrote more than one import.
    import_groups: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Where the database is (the `LISTEN` connection opens its own).
    url: std::sync::Arc<str>,
    /// Signals to the other instances (see `signals`).
    signals: signals::Signals,
}

/// Connections to PostgreSQL, at most, per process.
const POSTGRES_CONNECTIONS: usize = 16;

/// The SQLite URL for a file path, creating the file when missing.
pub fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

impl Store {
    /// Connects to `url` (`sqlite://…` or `postgres://…`). For SQLite the parent directory
    /// is created and the file opened in WAL mode. Does not migrate.
    pub async fn connect(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::BadUrl(
                "expected sqlite://PATH or postgres://…".into(),
            ));
        };
        // A SQLite file is created on first start unless the URL says otherwise.
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") => {
                format!("{url}{}mode=rwc", if url.contains('?') { '&' } else { '?' })
            }
            _ => url.to_owned(),
        };
        let options =
            AnyConnectOptions::from_str(&url).map_err(|e| StoreError::BadUrl(e.to_string()))?;
        match backend {
            Backend::Sqlite => {
                if let Some(dir) = sqlite_file(&url).and_then(|p| p.parent().map(Path::to_owned))
                    && !dir.as_os_str().is_empty()
                {
                    std::fs::create_dir_all(&dir).map_err(|e| {
                        StoreError::BadUrl(format!("cannot create {}: {e}", dir.display()))
                    })?;
                }
                let write = pool::Local::open(options.clone(), SQLITE_WRITER_SETUP, 1).await?;
                let read = pool::Local::open(options.clone(), SQLITE_SETUP, 4).await?;
                pool::spawn_checkpointer(options, SQLITE_SETUP, &write, pool::REWIND_AT_PAGES)
                    .await?;
                Ok(Self {
                    write: Pool(write),
                    read: Pool(read),
                    backend,
                    appended: Default::default(),
                    ingest: Default::default(),
                    auth: Default::default(),
                    contact_search: Default::default(),
                    contact_anchors: Default::default(),
                    imports: Default::default(),
                    import_groups: Default::default(),
                    url: url.as_str().into(),
                    signals: Default::default(),
                })
            }
            Backend::Postgres => {
                let pool = pool::Local::open_postgres(options, POSTGRES_CONNECTIONS).await?;
                Ok(Self {
                    write: Pool(pool.clone()),
                    read: Pool(pool),
                    backend,
                    appended: Default::default(),
                    ingest: Default::default(),
                    auth: Default::default(),
                    contact_search: Default::default(),
                    contact_anchors: Default::default(),
                    imports: Default::default(),
                    import_groups: Default::default(),
                    url: url.as_str().into(),
                    signals: Default::default(),
                })
            }
        }
    }

    /// Connects and brings the schema up to date.
    pub async fn open(url: &str) -> Result<Self> {
        let store = Self::connect(url).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Runs the embedded migrations of this backend.
    pub async fn migrate(&self) -> Result<()> {
        let mut conn = self.write.acquire().await?;
        let migrations = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrations.run_direct(None, &mut *conn, false).await?;
        Ok(())
    }

    /// Wakes whenever events were committed by this process.
    pub fn subscribe_events(&self) -> tokio::sync::watch::Receiver<u64> {
        self.appended.subscribe()
    }

    /// Tells subscribers, here and in the other instances, that events were committed.
    fn events_appended(&self) {
        self.events_appended_here();
        self.signal_events();
    }

    /// Tells this process's subscribers that events were committed.
    fn events_appended_here(&self) {
        self.appended.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    /// Closes the pools, waiting for connections in use.
    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }
}

/// The file of a SQLite URL (`None` for PostgreSQL and in-memory databases).
pub fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    sqlite_file(url).map(Path::to_owned)
}

fn sqlite_file(url: &str) -> Option<&Path> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    (!path.is_empty() && path != ":memory:").then(|| Path::new(path))
}

/// Maps a unique-constraint failure to [`StoreError::Conflict`].
fn conflict_or(e: sqlx::Error, what: &str) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what.into()),
        _ => StoreError::Database(e),
    }
}

/// Writes the parameters of generated (variable-length) statements, in order.
///
/// SQLite gets anonymous `?` parameters: a `$N` name costs SQLite a linear scan of the
/// statement's names when it parses and sqlx when it binds, which made a 1,000-parameter
/// batch insert spend most of its time comparing strings. PostgreSQL gets `$N`. Because `?`
/// takes the next index, a statement must write its parameters in binding order and must not
/// mix in hand-written `$N` ones: take every parameter of the statement from one `Params`.
#[derive(Clone)]
pub(crate) struct Params {
    sqlite: bool,
    n: usize,
}

impl Params {
    pub(crate) fn new(backend: Backend) -> Self {
        Self {
            sqlite: backend == Backend::Sqlite,
            n: 0,
        }
    }

    /// For a statement run on `conn`.
    pub(crate) fn on(conn: &sqlx::AnyConnection) -> Self {
        Self {
            sqlite: conn.backend_name() == "SQLite",
            n: 0,
        }
    }

    /// The next parameter.
    pub(crate) fn next(&mut self) -> String {
        self.n += 1;
        if self.sqlite {
            "?".to_owned()
        } else {
            format!("${}", self.n)
        }
    }

    /// `count` parameters separated by commas.
    pub(crate) fn list(&mut self, count: usize) -> String {
        (0..count)
            .map(|_| self.next())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `rows` parenthesized rows of `cols` parameters, separated by commas.
    pub(crate) fn rows(&mut self, rows: usize, cols: usize) -> String {
        (0..rows)
            .map(|_| format!("({})", self.list(cols)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}
