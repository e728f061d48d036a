#!/usr/bin/env python3
"""How much WAL an accepted send writes on SQLite, by group-commit size and schema.

A model of the group commit (docs/benchmarks.md, issue 19): each group is one
`BEGIN IMMEDIATE ... COMMIT` inserting each send's message and its outbox job, with the
store's settings (WAL, synchronous NORMAL, no automatic checkpoint) and the shipped schema of
`messages` and `outbox` (migrations 0002 to 0035). The WAL is checkpointed and truncated
every 500 groups; its bytes are summed. Then five more groups are written after a
checkpoint and their WAL frames read back and attributed to the table or index each page
belongs to (SQLite's `dbstat`), to show where a commit's pages come from.

    python3 scripts/ingest-wal-model.py [--sends 60000] [--groups 10,20,64,200]
                                        [--variants shipped,outbox-by-session,no-send-jobs]
                                        [--page-sizes 4096,2048,1024]

--page-sizes sets the page size of each model file (SQLite's default, 4096, is the store's).

Variants:
  shipped             the schema up to migration 0035 (a send with its outbox row: still
                      PostgreSQL's shape);
  outbox-by-session   the outbox as one tree keyed by (session_id, id) (WITHOUT ROWID),
                      instead of a rowid table, its id index and outbox_by_session;
  no-send-jobs        no outbox row for a send: the messages waiting to go out are found
                      through a partial index of queued messages by (session_id, id)
                      (SQLite's shape since migration 0036).
The rates it prints include Python's own cost for each statement, so compare the WAL figures
more than the rates.
"""

import argparse
import collections
import os
import random
import sqlite3
import struct
import tempfile
import time

MESSAGES = """
CREATE TABLE messages (id TEXT PRIMARY KEY, account_id TEXT NOT NULL, session_id TEXT NOT NULL,
 direction TEXT NOT NULL, chat_jid TEXT NOT NULL, sender_jid TEXT, kind TEXT NOT NULL,
 content TEXT NOT NULL, status TEXT NOT NULL, provider_msg_id TEXT, quoted_message_id TEXT,
 failure_reason TEXT, attempts INTEGER NOT NULL DEFAULT 0, accepted_at INTEGER NOT NULL,
 sent_at INTEGER, delivered_at INTEGER, read_at INTEGER, played_at INTEGER, failed_at INTEGER,
 deleted_at INTEGER, edited_at INTEGER, updated_at INTEGER NOT NULL, chat_lid TEXT,
 sender_lid TEXT, broadcast_id TEXT, broadcast_seq INTEGER);
CREATE INDEX messages_by_session ON messages (session_id, id);
CREATE INDEX messages_by_chat ON messages (session_id, chat_jid, id);
CREATE INDEX messages_by_chat_lid ON messages (session_id, chat_lid) WHERE chat_lid IS NOT NULL;
CREATE INDEX messages_by_sender ON messages (session_id, sender_jid)
    WHERE direction = 'in' AND sender_jid IS NOT NULL;
CREATE UNIQUE INDEX messages_by_provider_id ON messages (session_id, provider_msg_id)
    WHERE provider_msg_id IS NOT NULL;
"""
OUTBOX_COLUMNS = """account_id TEXT NOT NULL, session_id TEXT NOT NULL, chat_jid TEXT NOT NULL,
 message_id TEXT, action TEXT NOT NULL, payload TEXT NOT NULL, available_at INTEGER NOT NULL,
 attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, created_at INTEGER NOT NULL"""
OUTBOX_INDEXES = """
CREATE INDEX outbox_by_message ON outbox (message_id);
CREATE INDEX outbox_waiting ON outbox (session_id, chat_jid, available_at)
    WHERE available_at > created_at;
"""
SCHEMAS = {
    "shipped": MESSAGES
    + f"CREATE TABLE outbox (id TEXT PRIMARY KEY, {OUTBOX_COLUMNS});"
    + "CREATE INDEX outbox_by_session ON outbox (session_id, id);"
    + OUTBOX_INDEXES,
    "outbox-by-session": MESSAGES
    + f"CREATE TABLE outbox (id TEXT NOT NULL, {OUTBOX_COLUMNS}, PRIMARY KEY (session_id, id))"
    + " WITHOUT ROWID;"
    + OUTBOX_INDEXES,
    "no-send-jobs": MESSAGES
    + "CREATE INDEX messages_queued ON messages (session_id, id) WHERE status = 'queued';",
}

INSERT_MESSAGE = (
    "INSERT INTO messages (id, account_id, session_id, direction, chat_jid, sender_jid, kind,"
    " content, status, provider_msg_id, quoted_message_id, failure_reason, attempts, accepted_at,"
    " sent_at, delivered_at, read_at, played_at, failed_at, deleted_at, edited_at, updated_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_JOB = (
    "INSERT INTO outbox (id, account_id, session_id, chat_jid, message_id, action, payload,"
    " available_at, attempts, last_error, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
ACCOUNT = "acc_01m91z5pd919chrayc4mrf0h13"
SESSION = "sess_01m91z5pnb9d6pj2zzhtpdscf6"
CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
START_MS = 1796436321075


def ulid(prefix, n):
    """An id as the store makes them: increasing, 26 characters of base 32."""
    value = (START_MS << 80) + n * 7919
    return prefix + "".join(CROCKFORD[(value >> (5 * (25 - i))) & 31] for i in range(26))


def write_group(db, variant, first, size):
    db.execute("BEGIN IMMEDIATE")
    for n in range(first, first + size):
        message, at = ulid("msg_", n), START_MS + n
        provider = "3EB0%012X%016X" % (at, random.getrandbits(64))
        db.execute(INSERT_MESSAGE, (message, ACCOUNT, SESSION, "out",
                                    "15550102030@s.whatsapp.net", "15559333016@s.whatsapp.net",
                                    "text", '{"kind":"text","text":"wrk"}', "queued", provider,
                                    None, None, 0, at, None, None, None, None, None, None, None,
                                    at))
        if variant != "no-send-jobs":
            db.execute(INSERT_JOB, (ulid("job_", n), ACCOUNT, SESSION,
                                    "15550102030@s.whatsapp.net", message, "send", "null", at, 0,
                                    None, at))
    db.execute("COMMIT")


def frames_by_tree(db, path):
    """The frames in the WAL, by the table or index their page belongs to, and commits."""
    wal = open(path + "-wal", "rb").read()
    page_size = struct.unpack(">I", wal[8:12])[0]
    owner = dict((page, name) for name, page in db.execute("SELECT name, pageno FROM dbstat"))
    counts, commits, offset = collections.Counter(), 0, 32
    while offset + 24 + page_size <= len(wal):
        page, size_after = struct.unpack(">II", wal[offset:offset + 8])
        counts[owner.get(page, "(new page)")] += 1
        commits += size_after != 0
        offset += 24 + page_size
    return counts, commits


def run(variant, sends, group, page_size=4096):
    directory = tempfile.mkdtemp()
    path = os.path.join(directory, "model.db")
    db = sqlite3.connect(path, isolation_level=None)
    db.execute(f"PRAGMA page_size = {page_size}")
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.executescript(SCHEMAS[variant])
    db.execute("PRAGMA wal_autocheckpoint = 0")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    wal_bytes, started = 0, time.perf_counter()
    groups = sends // group
    for g in range(groups):
        write_group(db, variant, g * group, group)
        if g % 500 == 499:
            wal_bytes += os.path.getsize(path + "-wal")
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    elapsed = time.perf_counter() - started
    wal_bytes += os.path.getsize(path + "-wal")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for g in range(groups, groups + 5):
        write_group(db, variant, g * group, group)
    counts, commits = frames_by_tree(db, path)
    db_bytes = os.path.getsize(path)
    db.close()
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    os.rmdir(directory)
    written = groups * group
    print(f"page {page_size}: {variant}, {group} sends a group: {wal_bytes / written:,.0f} bytes of WAL a send,"
          f" {sum(counts.values()) / commits:.1f} pages a commit,"
          f" database {db_bytes / (written + 5 * group):,.0f} bytes a send,"
          f" {written / elapsed:,.0f} sends/s (with Python's cost)")
    print("    pages a commit by tree: " + ", ".join(
        f"{name} {n / commits:.1f}" for name, n in counts.most_common()))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sends", type=int, default=60000)
    parser.add_argument("--groups", default="10,20,64,200")
    parser.add_argument("--page-sizes", default="4096")
    parser.add_argument("--variants", default="shipped,outbox-by-session,no-send-jobs")
    args = parser.parse_args()
    for group in (int(g) for g in args.groups.split(",")):
        for variant in args.variants.split(","):
            for ps in args.page_sizes.split(","):
                run(variant, args.sends, group, int(ps))


if __name__ == "__main__":
    main()
