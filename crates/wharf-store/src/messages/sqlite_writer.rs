//! The SQLite group commit's own connection, called directly on the thread that commits.
//!
//! Through sqlx, a group went to the connection's worker thread and its answer came back
//! (a channel hand-off each way, with a wake-up of a sleeping thread for each), and every one
//! of its 33 values a send was mapped through `sqlx::Any` into SQLite's arguments on the
//! way. A profile of `wharf-bench ingest` put that thread at 31 % of the server's samples,
//! of which only two thirds were spent in SQLite itself. Here the commit thread steps the
//! statements itself: one prepared insert of a message (a queued message is its own send job),
//! bound straight from the row and run once a send, inside one `BEGIN IMMEDIATE … COMMIT`.
//!
//! The connection writes only while holding the write pool's turn (its one permit), so the
//! store's writes stay one at a time, in the order they asked, as with one connection. It
//! is opened with the writer's settings (no automatic checkpoint, the WAL trimmed back when
//! it starts over), so the checkpointer's rewind works for it as for the pool's connection.

use std::{
    borrow::Cow,
    ffi::{CStr, CString, c_char, c_int},
    path::Path,
    ptr,
};

use libsqlite3_sys as ffi;

use super::{INSERT_MESSAGE, PendingAccept};
use crate::{Result, StoreError};

/// The statements, by their place in [`SqliteWriter::statements`].
const BEGIN: usize = 0;
const EPOCH: usize = 1;
const MESSAGE: usize = 2;
const COMMIT: usize = 3;
const ROLLBACK: usize = 4;

/// A connection of its own to the store's SQLite file, used by one thread at a time.
pub(super) struct SqliteWriter {
    db: *mut ffi::sqlite3,
    statements: [*mut ffi::sqlite3_stmt; 5],
}

// SAFETY: the connection is opened in SQLite's multi-thread mode (`SQLITE_OPEN_NOMUTEX`),
// where a connection and its statements may move between threads as long as no two use them
// at once; `SqliteWriter` owns them and every use takes `&mut self`.
unsafe impl Send for SqliteWriter {}

impl Drop for SqliteWriter {
    fn drop(&mut self) {
        // SAFETY: the statements and the connection are ours and used by no one else;
        // finalizing a null statement is a no-op.
        unsafe {
            for statement in self.statements {
                ffi::sqlite3_finalize(statement);
            }
            ffi::sqlite3_close(self.db);
        }
    }
}

/// The message insert with `?` parameters.
fn insert_text() -> String {
    let head = INSERT_MESSAGE
        .split(" VALUES ")
        .next()
        .unwrap_or(INSERT_MESSAGE);
    format!("{head} VALUES ({})", vec!["?"; 22].join(", "))
}

impl SqliteWriter {
    /// Opens `path` (which must exist: the store created and migrated it) and runs `setup`.
    pub(super) fn open(path: &Path, setup: &str) -> Result<Self> {
        let name = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| StoreError::Sqlite(format!("{} holds a NUL byte", path.display())))?;
        let mut db = ptr::null_mut();
        let flags =
            ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_NOMUTEX | ffi::SQLITE_OPEN_EXRESCODE;
        // SAFETY: a NUL-terminated name and an out pointer; `db` is set even on failure (and
        // then closed by the `Drop` below).
        let rc = unsafe { ffi::sqlite3_open_v2(name.as_ptr(), &mut db, flags, ptr::null()) };
        let mut writer = Self {
            db,
            statements: [ptr::null_mut(); 5],
        };
        if rc != ffi::SQLITE_OK {
            return Err(writer.error(rc, &format!("opening {}", path.display())));
        }
        writer.exec(setup)?;
        let message = insert_text();
        let texts = [
            "BEGIN IMMEDIATE",
            "SELECT n FROM auth_epoch WHERE id = 1",
            message.as_str(),
            "COMMIT",
            "ROLLBACK",
        ];
        for (slot, text) in texts.into_iter().enumerate() {
            writer.statements[slot] = writer.prepare(text)?;
        }
        Ok(writer)
    }

    /// The connection's last error, as the store's.
    fn error(&self, rc: c_int, doing: &str) -> StoreError {
        // SAFETY: `db` is a connection handle (or null, for which SQLite answers "out of
        // memory"); the message is copied before any other call.
        let message = unsafe {
            let text = ffi::sqlite3_errmsg(self.db);
            if text.is_null() {
                String::new()
            } else {
                CStr::from_ptr(text).to_string_lossy().into_owned()
            }
        };
        StoreError::Sqlite(format!("{doing}: {message} (code {rc})"))
    }

    fn exec(&mut self, sql: &str) -> Result<()> {
        let text = CString::new(sql).map_err(|_| StoreError::Sqlite("SQL with a NUL".into()))?;
        // SAFETY: a NUL-terminated text, no callback, no error message asked for.
        let rc = unsafe {
            ffi::sqlite3_exec(
                self.db,
                text.as_ptr(),
                None,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        if rc != ffi::SQLITE_OK {
            return Err(self.error(rc, "setting up the connection"));
        }
        Ok(())
    }

    fn prepare(&mut self, sql: &str) -> Result<*mut ffi::sqlite3_stmt> {
        let mut statement = ptr::null_mut();
        let length = c_int::try_from(sql.len()).unwrap_or(c_int::MAX);
        // SAFETY: the text and its length in bytes; kept prepared for the connection's life.
        let rc = unsafe {
            ffi::sqlite3_prepare_v3(
                self.db,
                sql.as_ptr().cast::<c_char>(),
                length,
                ffi::SQLITE_PREPARE_PERSISTENT,
                &mut statement,
                ptr::null_mut(),
            )
        };
        if rc != ffi::SQLITE_OK {
            return Err(self.error(rc, "preparing the group commit"));
        }
        Ok(statement)
    }

    /// Runs a statement of no parameters that returns no row.
    fn run(&mut self, which: usize, doing: &str) -> Result<()> {
        let mut row = Binder::new(self.statements[which]);
        row.step(self, doing)
    }

    /// Commits `batch` in one transaction. The sends with an epoch (all at one, given by the
    /// caller) are written only if the auth epoch still has that value; the others always.
    /// Returns whether the sends with an epoch were written. On an error nothing is written.
    pub(super) fn commit(&mut self, batch: &[PendingAccept]) -> Result<bool> {
        let result = self.write(batch);
        if result.is_err() && !self.idle() {
            // Leave no transaction open (an error can also have rolled it back already).
            if let Err(e) = self.run(ROLLBACK, "rolling back") {
                tracing::warn!(error = %e, "the group commit could not roll back");
            }
        }
        result
    }

    /// Whether no transaction is open.
    pub(super) fn idle(&self) -> bool {
        // SAFETY: a connection handle.
        unsafe { ffi::sqlite3_get_autocommit(self.db) != 0 }
    }

    fn write(&mut self, batch: &[PendingAccept]) -> Result<bool> {
        self.run(BEGIN, "beginning the group commit")?;
        let checked = batch.iter().find_map(|p| p.verify);
        let current = self.epoch()?;
        let write_checked = checked.is_some() && checked == current;
        for p in batch {
            if p.verify.is_some() && !write_checked {
                continue;
            }
            self.insert_message(p)?;
        }
        self.run(COMMIT, "committing the group")?;
        Ok(write_checked)
    }

    /// The auth epoch, read inside the write transaction (so it cannot change before the
    /// commit).
    fn epoch(&mut self) -> Result<Option<i64>> {
        let statement = self.statements[EPOCH];
        // SAFETY: a prepared statement of ours; the column is read while on its row, and
        // the statement reset before it is used again.
        unsafe {
            let rc = ffi::sqlite3_step(statement);
            let epoch = (rc == ffi::SQLITE_ROW).then(|| ffi::sqlite3_column_int64(statement, 0));
            ffi::sqlite3_reset(statement);
            if rc != ffi::SQLITE_ROW && rc != ffi::SQLITE_DONE {
                return Err(self.error(rc, "reading the auth epoch"));
            }
            Ok(epoch)
        }
    }

    fn insert_message(&mut self, p: &PendingAccept) -> Result<()> {
        let m = &p.message;
        let mut row = Binder::new(self.statements[MESSAGE]);
        row.text(&m.id.as_string());
        row.text(&m.account_id.as_string());
        row.text(&m.session_id.as_string());
        row.text(m.direction.as_str());
        row.text(&m.chat_jid.to_string());
        row.opt_text(m.sender_jid.as_deref());
        row.text(m.kind.as_str());
        row.text(&serde_json::to_string(&m.content).unwrap_or_default());
        row.text(m.status.as_str());
        row.opt_text(
            m.provider_msg_id
                .as_ref()
                .map(|p| plain(p.as_str()))
                .as_deref(),
        );
        row.opt_text(m.quoted_message_id.map(|q| q.as_string()).as_deref());
        row.opt_text(m.failure_reason.as_deref().map(plain).as_deref());
        row.int(m.attempts);
        row.int(m.accepted_at);
        for at in [
            m.sent_at,
            m.delivered_at,
            m.read_at,
            m.played_at,
            m.failed_at,
            m.deleted_at,
            m.edited_at,
        ] {
            row.opt_int(at);
        }
        row.int(m.updated_at);
        row.step(self, "inserting a message")
    }
}

/// Text as a column of plain text holds it on both backends (see [`crate::plain`]).
fn plain(text: &str) -> Cow<'_, str> {
    if text.contains('\0') {
        Cow::Owned(text.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(text)
    }
}

/// Binds one row's values to a prepared statement, in order, remembering the first failure.
struct Binder {
    statement: *mut ffi::sqlite3_stmt,
    next: c_int,
    rc: c_int,
}

impl Binder {
    fn new(statement: *mut ffi::sqlite3_stmt) -> Self {
        Self {
            statement,
            next: 1,
            rc: ffi::SQLITE_OK,
        }
    }

    fn bound(&mut self, bind: impl FnOnce(*mut ffi::sqlite3_stmt, c_int) -> c_int) {
        if self.rc == ffi::SQLITE_OK {
            self.rc = bind(self.statement, self.next);
        }
        self.next += 1;
    }

    fn text(&mut self, value: &str) {
        let Ok(length) = c_int::try_from(value.len()) else {
            self.rc = ffi::SQLITE_TOOBIG;
            return;
        };
        // SAFETY: the bytes and their length; SQLite copies them (`SQLITE_TRANSIENT`).
        self.bound(|s, i| unsafe {
            ffi::sqlite3_bind_text(
                s,
                i,
                value.as_ptr().cast::<c_char>(),
                length,
                ffi::SQLITE_TRANSIENT(),
            )
        });
    }

    fn opt_text(&mut self, value: Option<&str>) {
        match value {
            Some(value) => self.text(value),
            // SAFETY: a prepared statement and a parameter's index.
            None => self.bound(|s, i| unsafe { ffi::sqlite3_bind_null(s, i) }),
        }
    }

    fn int(&mut self, value: i64) {
        // SAFETY: as above.
        self.bound(|s, i| unsafe { ffi::sqlite3_bind_int64(s, i, value) });
    }

    fn opt_int(&mut self, value: Option<i64>) {
        match value {
            Some(value) => self.int(value),
            // SAFETY: as above.
            None => self.bound(|s, i| unsafe { ffi::sqlite3_bind_null(s, i) }),
        }
    }

    /// Runs the statement to its end and resets it for the next row.
    fn step(&mut self, writer: &SqliteWriter, doing: &str) -> Result<()> {
        // SAFETY: a prepared statement of the writer's connection, reset after its step.
        let rc = if self.rc == ffi::SQLITE_OK {
            unsafe {
                let rc = ffi::sqlite3_step(self.statement);
                ffi::sqlite3_reset(self.statement);
                rc
            }
        } else {
            self.rc
        };
        if rc == ffi::SQLITE_DONE || rc == ffi::SQLITE_ROW {
            return Ok(());
        }
        Err(writer.error(rc, doing))
    }
}
