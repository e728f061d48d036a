#!/usr/bin/env python3
# What each index of the contacts schema costs an import, without the server: contacts
# shaped as `wharf-bench contacts` makes them, 1,000 a transaction, into the SQLite schema of
# migrations 0012 and 0028 (contacts, their label rows, the FTS5 trigram index), with some
# indexes left out per variant. The import's counter rows (`contact_counts`) are not written.
# Python's own row building is in the figures: compare the variants of one run only.
#   python3 scripts/contacts-import-indexes.py VARIANT N     (N rounded down to thousands)
# VARIANT: base, cache64 (a 64 MiB page cache instead of 8), nofts (no search index),
# nooptin (no contacts_by_opt_in, no contact_labels_by_opt_in), noappend (no
# contacts_by_account, no contact_labels_by_contact), lean (none of those four),
# leannofts (lean and no search index), plan (what migration 0033 did, without its partial
# indexes: no opt-in indexes, no contacts_by_account, the name index ending with the opt-in,
# labels WITHOUT ROWID), plannofts (plan, no search index), planbulk (plan, the search index
# written by one INSERT ... SELECT a transaction instead of its trigger). The database goes
# to /tmp/wharf-import-VARIANT.db. Contacts are inserted 500 to a statement, as the store
# does: a statement a row (as before 2026-12-04) made the search index's trigger look about
# four times dearer than it is in the server (FTS5 flushes its pending terms per statement).
import sqlite3, sys, time, os, json, re
HERE = os.path.dirname(os.path.abspath(__file__))
MIGRATIONS = os.path.join(HERE, "..", "crates", "wharf-store", "migrations", "sqlite")
variant = sys.argv[1]; N = int(sys.argv[2]) // 1000 * 1000
path = f"/tmp/wharf-import-{variant}.db"
for s in ("", "-wal", "-shm"):
    try: os.remove(path + s)
    except FileNotFoundError: pass
db = sqlite3.connect(path, isolation_level=None)
cache = {"base": -8192, "cache64": -65536}.get(variant, -8192)
db.executescript(f"PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size={cache}; PRAGMA temp_store=MEMORY;")
mig = open(os.path.join(MIGRATIONS, "0012_contacts.sql")).read()
# keep only contacts, labels, counts and the FTS table/triggers
mig = mig.split("CREATE TABLE business_profiles")[0]
mig = re.sub(r"REFERENCES \w+\(id\)( ON DELETE CASCADE)?", "", mig)
db.executescript(mig)
db.executescript(open(os.path.join(MIGRATIONS, "0028_contacts_fts_detail_none.sql")).read())
if variant in ("lean", "leannofts"):
    db.executescript("DROP INDEX contacts_by_account; DROP INDEX contacts_by_opt_in; DROP INDEX contact_labels_by_contact; DROP INDEX contact_labels_by_opt_in;")
if variant == "nooptin":
    db.executescript("DROP INDEX contacts_by_opt_in; DROP INDEX contact_labels_by_opt_in;")
if variant == "noappend":
    db.executescript("DROP INDEX contacts_by_account; DROP INDEX contact_labels_by_contact;")
if variant in ("plan", "plannofts", "planbulk"):
    db.executescript("""DROP INDEX contacts_by_account; DROP INDEX contacts_by_opt_in; DROP INDEX contacts_by_name;
        CREATE INDEX contacts_by_name ON contacts (session_id, sort_name, id, is_opted_in);
        DROP TABLE contact_labels;
        CREATE TABLE contact_labels (session_id TEXT NOT NULL, kind TEXT NOT NULL, label TEXT NOT NULL,
            sort_name TEXT NOT NULL, is_opted_in INTEGER NOT NULL, contact_id TEXT NOT NULL,
            PRIMARY KEY (session_id, kind, label, sort_name, contact_id)) WITHOUT ROWID;
        CREATE INDEX contact_labels_by_contact ON contact_labels (contact_id);""")
if variant in ("nofts", "leannofts", "plannofts", "planbulk"):
    db.executescript("DROP TRIGGER contacts_fts_insert;")
F=["Olivia","Liam","Emma","Noah","Ava","Elijah","Sophia","Mateo","Isabella","Lucas","Mia","Levi","Amelia","Asher","Harper","James","Evelyn","Leo","Luna","Ezra"]
L=["Smith","Johnson","Williams","Brown","Jones","Garcia","Miller","Davis","Rodriguez","Martinez","Hernandez","Lopez","Gonzalez","Wilson","Anderson","Thomas","Taylor","Moore","Jackson","Martin"]
T=["vip","new","trial","churned","enterprise"]
cols="seq,id,account_id,session_id,phone,name,sort_name,email,company,tags,group_names,is_opted_in,custom_fields,search,created_at,updated_at"
t0=time.time(); tlast=t0; mark=N*2//3//1000*1000
for b in range(0, N, 1000):
    rows=[]; labels=[]
    for i in range(b, b+1000):
        f=F[i%20]; l=L[(i//20)%20]; name=f"{f} {l} {i}"; sn=name.lower()
        email=f"{f.lower()}.{l.lower()}{i}@example{i%100}.com"; comp=f"Company {i%5000}"; ph=f"+1650{i:07d}"
        opt= 0 if i%10==0 else 1; cid=f"ct_{i:026d}"
        rows.append((i+1,cid,"acc","sess",ph,name,sn,email,comp,json.dumps([T[i%5]]),json.dumps([f"group-{i%20}"]),opt,"{}",f"{sn} {ph} {email} {comp.lower()}",0,0))
        labels.append(("sess","tag",T[i%5],sn,opt,cid)); labels.append(("sess","group",f"group-{i%20}",sn,opt,cid))
    db.execute("BEGIN IMMEDIATE")
    # As the store writes them: one statement of 500 rows (a trigger's work is per statement).
    for k in range(0, len(rows), 500):
        part = rows[k:k + 500]
        one = "(" + ",".join("?" * 16) + ")"
        db.execute(f"INSERT INTO contacts ({cols}) VALUES {','.join([one] * len(part))}",
                   [v for r in part for v in r])
    db.executemany("INSERT INTO contact_labels VALUES (?,?,?,?,?,?)", labels)
    if variant == "planbulk":
        db.execute("INSERT INTO contacts_fts (rowid, search) SELECT seq, search FROM contacts WHERE seq > ? AND seq <= ?", (b, b + 1000))
    db.execute("COMMIT")
    if b+1000 == mark: tlast=time.time()
    if (b//1000) % 50 == 0: db.execute("PRAGMA wal_checkpoint(PASSIVE)")
t1=time.time()
print(variant, N, "overall %.0f/s" % (N/(t1-t0)), "last third %.0f/s" % ((N-mark)/(t1-tlast)))
