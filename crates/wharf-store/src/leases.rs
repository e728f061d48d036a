//! Instances and session leases: the only coordination between Wharf instances sharing a
//! database. Each instance keeps a heartbeat row; each running session is owned by at most one
//! instance through a lease it renews. A lease that is not renewed expires and another
//! instance takes it with a higher `generation`, which fences the former owner's writes
//! (`Store::lease_held`, and `record_outcomes` with a fence).
//!
//! Times are the instances' clocks in milliseconds: instances sharing a database are expected
//! to keep their clocks in step (NTP), well within a lease's length.

use sqlx::{AnyConnection, Row, any::AnyRow};
use wharf_core::SessionId;

use crate::{Backend, Params, Result, Store, StoreError};

/// A lease held by this instance: the session and the generation it was taken at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub session_id: SessionId,
    pub generation: i64,
}

/// Proof of ownership a write is fenced with: it succeeds only while `instance` still holds
/// the session's lease at `generation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub session_id: SessionId,
    pub instance_id: String,
    pub generation: i64,
}

/// An instance as the database knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceRow {
    pub id: String,
    pub name: String,
    pub address: Option<String>,
    pub started_at: i64,
    pub heartbeat_at: i64,
    pub expires_at: i64,
}

/// A session's lease as the database knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaseRow {
    pub session_id: SessionId,
    pub instance_id: String,
    pub generation: i64,
    pub acquired_at: i64,
    pub expires_at: i64,
}

fn instance_of(r: &AnyRow) -> Result<InstanceRow> {
    Ok(InstanceRow {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        address: r.try_get("address")?,
        started_at: r.try_get("started_at")?,
        heartbeat_at: r.try_get("heartbeat_at")?,
        expires_at: r.try_get("expires_at")?,
    })
}

fn lease_of_row(r: &AnyRow) -> Result<LeaseRow> {
    Ok(LeaseRow {
        session_id: r.try_get("session_id")?,
        instance_id: r.try_get("instance_id")?,
        generation: r.try_get("generation")?,
        acquired_at: r.try_get("acquired_at")?,
        expires_at: r.try_get("expires_at")?,
    })
}

const RUNNING: &str = "('pending', 'connecting', 'connected')";

impl Store {
    /// Writes this instance's heartbeat: alive until `expires_at`.
    pub async fn heartbeat(&self, instance: &InstanceRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO instances (id, name, address, started_at, heartbeat_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET \
             address = excluded.address, heartbeat_at = excluded.heartbeat_at, \
             expires_at = excluded.expires_at",
        )
        .bind(&instance.id)
        .bind(&instance.name)
        .bind(instance.address.clone())
        .bind(instance.started_at)
        .bind(instance.heartbeat_at)
        .bind(instance.expires_at)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// The instances alive at `now`, oldest first.
    pub async fn live_instances(&self, now: i64) -> Result<Vec<InstanceRow>> {
        let rows = sqlx::query(
            "SELECT id, name, address, started_at, heartbeat_at, expires_at FROM instances \
             WHERE expires_at > $1 ORDER BY started_at, id",
        )
        .bind(now)
        .fetch_all(&self.write)
        .await?;
        rows.iter().map(instance_of).collect()
    }

    /// The instance `id`, alive or not, if it is still known.
    pub async fn instance(&self, id: &str) -> Result<Option<InstanceRow>> {
        let row = sqlx::query(
            "SELECT id, name, address, started_at, heartbeat_at, expires_at FROM instances \
             WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.write)
        .await?;
        row.as_ref().map(instance_of).transpose()
    }

    /// Forgets instances dead since before `before` (their leases expired long ago).
    pub async fn forget_instances(&self, before: i64) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM instances WHERE expires_at < $1")
            .bind(before)
            .execute(&self.write)
            .await?
            .rows_affected())
    }

    /// Removes this instance's heartbeat (a clean shutdown).
    pub async fn remove_instance(&self, instance: &str) -> Result<()> {
        sqlx::query("DELETE FROM instances WHERE id = $1")
            .bind(instance)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    /// Extends every lease `instance` holds to `expires_at` and returns them: a lease missing
    /// from the answer was taken over by another instance. Leases it gave up (expiry 0) stay
    /// given up; one that merely expired and that nobody took is still its own.
    pub async fn renew_leases(&self, instance: &str, expires_at: i64) -> Result<Vec<Lease>> {
        let rows = sqlx::query(
            "UPDATE session_leases SET expires_at = $1 WHERE instance_id = $2 AND expires_at > 0 \
             RETURNING session_id, generation",
        )
        .bind(expires_at)
        .bind(instance)
        .fetch_all(&self.write)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Lease {
                    session_id: r.try_get("session_id")?,
                    generation: r.try_get("generation")?,
                })
            })
            .collect()
    }

    /// How many sessions are running (to be owned by some instance).
    pub async fn count_running_sessions(&self) -> Result<i64> {
        let sql = format!("SELECT COUNT(*) AS n FROM sessions WHERE status IN {RUNNING}");
        Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_one(&self.write)
            .await?
            .try_get("n")?)
    }

    /// Running sessions nobody owns at `now` (no lease, or an expired one), at most `limit`.
    pub async fn unowned_sessions(&self, now: i64, limit: i64) -> Result<Vec<SessionId>> {
        let sql = format!(
            "SELECT s.id FROM sessions s LEFT JOIN session_leases l ON l.session_id = s.id \
             WHERE s.status IN {RUNNING} AND (l.session_id IS NULL OR l.expires_at <= $1) \
             ORDER BY s.id LIMIT $2"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .bind(limit)
            .fetch_all(&self.write)
            .await?;
        rows.iter().map(|r| Ok(r.try_get("id")?)).collect()
    }

    /// Takes the lease of `session` for `instance` until `expires_at` when nobody holds it at
    /// `now` (never held, released, or expired), or when `instance` holds it already (then
    /// extended at the same generation). `None` when another instance holds it.
    pub async fn acquire_lease(
        &self,
        instance: &str,
        session: SessionId,
        now: i64,
        expires_at: i64,
    ) -> Result<Option<Lease>> {
        let row = sqlx::query(
            "INSERT INTO session_leases (session_id, instance_id, generation, acquired_at, expires_at) \
             VALUES ($1, $2, 1, $3, $4) ON CONFLICT (session_id) DO UPDATE SET \
             generation = CASE WHEN session_leases.instance_id = excluded.instance_id \
                 THEN session_leases.generation ELSE session_leases.generation + 1 END, \
             acquired_at = CASE WHEN session_leases.instance_id = excluded.instance_id \
                 THEN session_leases.acquired_at ELSE excluded.acquired_at END, \
             instance_id = excluded.instance_id, expires_at = excluded.expires_at \
             WHERE session_leases.instance_id = excluded.instance_id OR session_leases.expires_at <= $3 \
             RETURNING generation",
        )
        .bind(session)
        .bind(instance)
        .bind(now)
        .bind(expires_at)
        .fetch_optional(&self.write)
        .await?;
        Ok(match row {
            Some(r) => Some(Lease {
                session_id: session,
                generation: r.try_get("generation")?,
            }),
            None => None,
        })
    }

    /// Gives up leases `instance` holds: they expire at once, and the next owner takes them
    /// with a higher generation. Returns how many were released.
    pub async fn release_leases(&self, instance: &str, sessions: &[SessionId]) -> Result<u64> {
        let mut released = 0;
        for chunk in sessions.chunks(200) {
            let mut p = Params::new(self.backend);
            let owner = p.next();
            let list = p.list(chunk.len());
            let sql = format!(
                "UPDATE session_leases SET expires_at = 0 WHERE instance_id = {owner} \
                 AND session_id IN ({list})"
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
                .persistent(false)
                .bind(instance);
            for id in chunk {
                q = q.bind(*id);
            }
            released += q.execute(&self.write).await?.rows_affected();
        }
        Ok(released)
    }

    /// Gives up every lease `instance` holds (a clean shutdown).
    pub async fn release_all_leases(&self, instance: &str) -> Result<u64> {
        Ok(
            sqlx::query("UPDATE session_leases SET expires_at = 0 WHERE instance_id = $1")
                .bind(instance)
                .execute(&self.write)
                .await?
                .rows_affected(),
        )
    }

    /// Forgets every instance and lease: for a database only one instance can use at a
    /// time (SQLite, whose file is locked by the running server), where whatever is there
    /// was left by a previous run.
    pub async fn clear_leases(&self) -> Result<()> {
        sqlx::query("UPDATE session_leases SET expires_at = 0")
            .execute(&self.write)
            .await?;
        sqlx::query("DELETE FROM instances")
            .execute(&self.write)
            .await?;
        Ok(())
    }

    /// Every lease, by session.
    pub async fn leases(&self) -> Result<Vec<LeaseRow>> {
        let rows = sqlx::query(
            "SELECT session_id, instance_id, generation, acquired_at, expires_at FROM session_leases \
             ORDER BY session_id",
        )
        .fetch_all(&self.write)
        .await?;
        rows.iter().map(lease_of_row).collect()
    }

    /// The lease of `session`, if any was ever taken.
    pub async fn lease_of(&self, session: SessionId) -> Result<Option<LeaseRow>> {
        let row = sqlx::query(
            "SELECT session_id, instance_id, generation, acquired_at, expires_at FROM session_leases \
             WHERE session_id = $1",
        )
        .bind(session)
        .fetch_optional(&self.write)
        .await?;
        row.as_ref().map(lease_of_row).transpose()
    }
}

/// Checks inside the caller's transaction that `fence` still holds: its instance owns the
/// session at its generation. On PostgreSQL the lease row is locked for share until the
/// transaction ends, so a takeover waits for the fenced write to commit (or the write sees
/// the takeover and fails). SQLite has one writer at a time. Fails with
/// [`StoreError::Fenced`] when the lease moved.
pub(crate) async fn check_fence(
    conn: &mut AnyConnection,
    backend: Backend,
    fence: &Fence,
) -> Result<()> {
    let lock = match backend {
        Backend::Sqlite => "",
        Backend::Postgres => " FOR SHARE",
    };
    let sql = format!(
        "SELECT 1 AS held FROM session_leases WHERE session_id = $1 AND instance_id = $2 \
         AND generation = $3{lock}"
    );
    let held = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(fence.session_id)
        .bind(&fence.instance_id)
        .bind(fence.generation)
        .fetch_optional(&mut *conn)
        .await?;
    match held {
        Some(_) => Ok(()),
        None => Err(StoreError::Fenced(format!(
            "session {} is no longer owned by instance {} at lease generation {}",
            fence.session_id, fence.instance_id, fence.generation
        ))),
    }
}
