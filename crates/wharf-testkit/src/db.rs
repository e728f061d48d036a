//! Throwaway databases for tests.

use std::path::PathBuf;

use rand::RngCore;
use sqlx::{Connection, Executor, PgConnection};

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The environment variable naming the PostgreSQL server for tests.
pub const POSTGRES_ENV: &str = "WHARF_TEST_DATABASE_URL";

/// A database that exists for one test and is removed when dropped.
pub struct TestDb {
    backend: Backend,
    url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Dir(PathBuf),
    Database { admin_url: String, name: String },
}

fn random_suffix() -> String {
    let mut bytes = [0u8; 8];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl TestDb {
    /// A fresh database; `None` for PostgreSQL when `WHARF_TEST_DATABASE_URL` is unset.
    /// Panics when PostgreSQL is configured but unreachable: such a test must fail, not skip.
    pub async fn create(backend: Backend) -> Option<Self> {
        match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(format!("wharf-test-{}", random_suffix()));
                std::fs::create_dir_all(&dir).expect("create a temporary directory");
                let url = wharf_store::sqlite_url(&dir.join("wharf.db"));
                Some(Self {
                    backend,
                    url,
                    cleanup: Cleanup::Dir(dir),
                })
            }
            Backend::Postgres => {
                let Ok(admin_url) = std::env::var(POSTGRES_ENV) else {
                    eprintln!(
                        "skipping the PostgreSQL run of this test: {POSTGRES_ENV} is not set"
                    );
                    return None;
                };
                let name = format!("wharf_test_{}", random_suffix());
                let mut conn = PgConnection::connect(&admin_url).await.unwrap_or_else(|e| {
                    panic!("{POSTGRES_ENV} is set but PostgreSQL is unreachable: {e}")
                });
                conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .await
                    .expect("create the test database");
                conn.close().await.ok();
                let url = with_database(&admin_url, &name);
                Some(Self {
                    backend,
                    url,
                    cleanup: Cleanup::Database { admin_url, name },
                })
            }
        }
    }

    /// PostgreSQL only: refuses (or again allows) connections to this database and ends the
    /// open ones, to play a database outage. Returns `false` on SQLite, which cannot do this.
    pub async fn set_reachable(&self, reachable: bool) -> bool {
        let Cleanup::Database { admin_url, name } = &self.cleanup else {
            return false;
        };
        let mut conn = PgConnection::connect(admin_url)
            .await
            .expect("connect as admin");
        conn.execute(sqlx::AssertSqlSafe(format!(
            "ALTER DATABASE {name} ALLOW_CONNECTIONS {reachable}"
        )))
        .await
        .expect("change ALLOW_CONNECTIONS");
        if !reachable {
            conn.execute(sqlx::AssertSqlSafe(format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
            )))
            .await
            .expect("end the database's connections");
        }
        conn.close().await.ok();
        true
    }

    /// Runs `sql` (one or more statements) on this database, beside the server: to add a
    /// trigger that makes a write fail, say.
    pub async fn execute(&self, sql: &str) {
        match self.backend {
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url)
                    .await
                    .expect("connect to the SQLite file");
                conn.execute(sqlx::AssertSqlSafe(sql.to_owned()))
                    .await
                    .expect("run the SQL");
                conn.close().await.ok();
            }
            Backend::Postgres => {
                let mut conn = PgConnection::connect(&self.url)
                    .await
                    .expect("connect to the test database");
                conn.execute(sqlx::AssertSqlSafe(sql.to_owned()))
                    .await
                    .expect("run the SQL");
                conn.close().await.ok();
            }
        }
    }

    /// The one integer `sql` (a `SELECT COUNT(*)…`, say) answers, read beside the server.
    pub async fn count(&self, sql: &str) -> i64 {
        let sql = sqlx::AssertSqlSafe(format!("SELECT CAST(({sql}) AS BIGINT)"));
        match self.backend {
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url)
                    .await
                    .expect("connect to the SQLite file");
                sqlx::query_scalar(sql)
                    .fetch_one(&mut conn)
                    .await
                    .expect("count")
            }
            Backend::Postgres => {
                let mut conn = PgConnection::connect(&self.url)
                    .await
                    .expect("connect to the test database");
                sqlx::query_scalar(sql)
                    .fetch_one(&mut conn)
                    .await
                    .expect("count")
            }
        }
    }

    /// The query plan the database picks for `sql` (`EXPLAIN`, one line per plan line; on
    /// SQLite `EXPLAIN QUERY PLAN`'s details).
    pub async fn plan(&self, sql: &str) -> String {
        use sqlx::Row;
        let lines: Vec<String> = match self.backend {
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url)
                    .await
                    .expect("connect to the SQLite file");
                let rows = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
                    .fetch_all(&mut conn)
                    .await
                    .expect("explain");
                rows.iter().map(|r| r.get::<String, _>(3)).collect()
            }
            Backend::Postgres => {
                let mut conn = PgConnection::connect(&self.url)
                    .await
                    .expect("connect to the test database");
                let rows = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN {sql}")))
                    .fetch_all(&mut conn)
                    .await
                    .expect("explain");
                rows.iter().map(|r| r.get::<String, _>(0)).collect()
            }
        };
        lines.join("\n")
    }

    /// A trigger named `name` that refuses (raises an error on) every `event` (`INSERT`,
    /// `UPDATE`, `DELETE`) of rows of `table` for which `when` (SQL over `NEW`/`OLD`) holds.
    pub async fn refuse(&self, name: &str, event: &str, table: &str, when: &str) {
        let sql = match self.backend {
            Backend::Sqlite => format!(
                "CREATE TRIGGER {name} BEFORE {event} ON {table} WHEN {when} \
                 BEGIN SELECT RAISE(ABORT, 'refused by test trigger {name}'); END;"
            ),
            Backend::Postgres => format!(
                "CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                 RAISE EXCEPTION 'refused by test trigger {name}'; END; $$; \
                 CREATE TRIGGER {name} BEFORE {event} ON {table} FOR EACH ROW WHEN ({when}) \
                 EXECUTE FUNCTION {name}();"
            ),
        };
        self.execute(&sql).await;
    }

    /// Removes a trigger made by [`TestDb::refuse`].
    pub async fn allow(&self, name: &str, table: &str) {
        let sql = match self.backend {
            Backend::Sqlite => format!("DROP TRIGGER {name};"),
            Backend::Postgres => {
                format!("DROP TRIGGER {name} ON {table}; DROP FUNCTION {name}();")
            }
        };
        self.execute(&sql).await;
    }

    /// The URL Wharf should use.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }
}

/// `url` pointing at database `name` instead of its own.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_part = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{host_part}/{name}?{q}"),
        None => format!("{host_part}/{name}"),
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::Dir(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::Database { admin_url, name } => {
                let (admin_url, name) = (admin_url.clone(), name.clone());
                // Drop runs inside the test's runtime; use a thread with its own.
                let _ = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .ok()?;
                    rt.block_on(async {
                        let mut conn = PgConnection::connect(&admin_url).await.ok()?;
                        conn.execute(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .await
                        .ok()
                    })
                })
                .join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_the_database_name() {
        assert_eq!(
            super::with_database("postgres://u@h:5432/postgres", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            super::with_database("postgres://u@h/test?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
        assert_eq!(super::with_database("postgres://h", "x"), "postgres://h/x");
    }
}
