#!/usr/bin/env python3
# What the size of the label rows and of the name index, and the number of contacts a
# transaction, cost a SQLite contacts import, without the server (issue 14, 2026-12-05):
# contacts shaped as `wharf-bench contacts` makes them, 500 a statement, into the schema
# after migration 0033 (variant `plan`) or smaller label rows (the others). The counter rows
# are not written, nor foreign keys checked. Python's own row building is in the figures:
# compare the variants of one run only.
#   [TX=1000] python3 scripts/contacts-import-labels.py VARIANT N   (N rounded down to thousands)
# VARIANT: plan (label rows keyed by session, kind, label, sort name and contact id; the name
# index ends with the id), compactid (label rows keyed by a label number, sort name and
# contact id), compact (by a label number, sort name and the contact's rowid), compactbyc
# (compact with an index of the label rows by rowid), compactname (compact, and the name
# index without the id: what migration 0035 did, less its keeping the seq as a column),
# nolabels (plan without label rows), noname (plan without the name index).
# TX: contacts a transaction (a multiple of 1,000). The database goes to
# /tmp/wharf-imp2-VARIANT.db.
import sqlite3, sys, time, os, json
variant = sys.argv[1]; N = int(sys.argv[2]) // 1000 * 1000; TX=int(os.environ.get("TX","1000"))
path = f"/tmp/wharf-imp2-{variant}.db"
for s in ("", "-wal", "-shm"):
    try: os.remove(path + s)
    except FileNotFoundError: pass
db = sqlite3.connect(path, isolation_level=None)
db.executescript("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-8192; PRAGMA temp_store=MEMORY;")
db.executescript("""
CREATE TABLE contacts (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, account_id TEXT NOT NULL, session_id TEXT NOT NULL,
 phone TEXT NOT NULL, name TEXT NOT NULL, sort_name TEXT NOT NULL, email TEXT, company TEXT, tags TEXT NOT NULL, group_names TEXT NOT NULL,
 is_opted_in INTEGER NOT NULL, opt_in_at INTEGER, opt_out_at INTEGER, is_blocked INTEGER NOT NULL DEFAULT 0, custom_fields TEXT NOT NULL,
 notes TEXT, search TEXT NOT NULL, last_sent_at INTEGER, last_received_at INTEGER, sent_count INTEGER NOT NULL DEFAULT 0,
 received_count INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
CREATE UNIQUE INDEX contacts_by_phone ON contacts (session_id, phone);
CREATE INDEX contacts_opted_out ON contacts (session_id, is_opted_in, sort_name, id) WHERE is_opted_in = 0;
CREATE VIRTUAL TABLE contacts_fts USING fts5(search, content = 'contacts', content_rowid = 'seq', tokenize = 'trigram', detail = none, columnsize = 0);
CREATE TRIGGER contacts_fts_insert AFTER INSERT ON contacts BEGIN INSERT INTO contacts_fts (rowid, search) VALUES (new.seq, new.search); END;
""")
compact = variant.startswith("compact")
if variant in ("compactname",):
    db.executescript("CREATE INDEX contacts_by_name ON contacts (session_id, sort_name, is_opted_in);")
elif variant != "noname":
    db.executescript("CREATE INDEX contacts_by_name ON contacts (session_id, sort_name, id, is_opted_in);")
if compact:
    db.executescript("""CREATE TABLE label_keys (lk INTEGER PRIMARY KEY, session_id TEXT, kind TEXT, label TEXT, UNIQUE(session_id, kind, label));
    """)
    if variant == "compactid":
        db.executescript("CREATE TABLE contact_labels (lk INTEGER NOT NULL, sort_name TEXT NOT NULL, contact_id TEXT NOT NULL, is_opted_in INTEGER NOT NULL, PRIMARY KEY (lk, sort_name, contact_id)) WITHOUT ROWID;")
    else:
        db.executescript("CREATE TABLE contact_labels (lk INTEGER NOT NULL, sort_name TEXT NOT NULL, seq INTEGER NOT NULL, is_opted_in INTEGER NOT NULL, PRIMARY KEY (lk, sort_name, seq)) WITHOUT ROWID;")
    if variant == "compactbyc":
        db.executescript("CREATE INDEX contact_labels_by_contact ON contact_labels (seq);")
else:
    db.executescript("""CREATE TABLE contact_labels (session_id TEXT NOT NULL, kind TEXT NOT NULL, label TEXT NOT NULL,
            sort_name TEXT NOT NULL, is_opted_in INTEGER NOT NULL, contact_id TEXT NOT NULL,
            PRIMARY KEY (session_id, kind, label, sort_name, contact_id)) WITHOUT ROWID;
        CREATE INDEX contact_labels_by_contact ON contact_labels (contact_id);""")
F=["Olivia","Liam","Emma","Noah","Ava","Elijah","Sophia","Mateo","Isabella","Lucas","Mia","Levi","Amelia","Asher","Harper","James","Evelyn","Leo","Luna","Ezra"]
L=["Smith","Johnson","Williams","Brown","Jones","Garcia","Miller","Davis","Rodriguez","Martinez","Hernandez","Lopez","Gonzalez","Wilson","Anderson","Thomas","Taylor","Moore","Jackson","Martin"]
T=["vip","new","trial","churned","enterprise"]
LK={}
def lk(kind,label):
    if (kind,label) not in LK:
        db.execute("INSERT INTO label_keys (session_id,kind,label) VALUES ('sess_01234567890123456789012345',?,?)",(kind,label)); LK[(kind,label)]=db.execute("select last_insert_rowid()").fetchone()[0]
    return LK[(kind,label)]
cols="seq,id,account_id,session_id,phone,name,sort_name,email,company,tags,group_names,is_opted_in,custom_fields,search,created_at,updated_at"
S='sess_01234567890123456789012345'
t0=time.time(); tlast=t0; mark=N*2//3//1000*1000
for b in range(0, N, 1000):
    rows=[]; labels=[]
    if b % TX == 0: db.execute("BEGIN IMMEDIATE")
    for i in range(b, b+1000):
        f=F[i%20]; l=L[(i//20)%20]; name=f"{f} {l} {i}"; sn=name.lower()
        email=f"{f.lower()}.{l.lower()}{i}@example{i%100}.com"; comp=f"Company {i%5000}"; ph=f"+1650{i:07d}"
        opt= 0 if i%10==0 else 1; cid=f"ct_{i:026d}"
        rows.append((i+1,cid,"acc_01234567890123456789012345",S,ph,name,sn,email,comp,json.dumps([T[i%5]]),json.dumps([f"group-{i%20}"]),opt,"{}",f"{sn} {ph} {email} {comp.lower()}",0,0))
        if compact:
            x = cid if variant=="compactid" else i+1
            labels.append((lk("tag",T[i%5]),sn,x,opt)); labels.append((lk("group",f"group-{i%20}"),sn,x,opt))
        else:
            labels.append((S,"tag",T[i%5],sn,opt,cid)); labels.append((S,"group",f"group-{i%20}",sn,opt,cid))
    for k in range(0, len(rows), 500):
        part = rows[k:k + 500]
        one = "(" + ",".join("?" * 16) + ")"
        db.execute(f"INSERT INTO contacts ({cols}) VALUES {','.join([one] * len(part))}", [v for r in part for v in r])
    w=len(labels[0]); one="(" + ",".join("?" * w) + ")"
    if variant != "nolabels": db.execute(f"INSERT INTO contact_labels VALUES {','.join([one]*len(labels))}", [v for r in labels for v in r])
    if b % TX == TX-1000:
        db.execute("COMMIT")
        if (b//1000) % 50 == 49: db.execute("PRAGMA wal_checkpoint(PASSIVE)")
    if b+1000 == mark: tlast=time.time()
t1=time.time()
print(variant, N, "TX", TX, "overall %.0f/s" % (N/(t1-t0)), "last third %.0f/s" % ((N-mark)/(t1-tlast)), "size MB %.0f" % (os.path.getsize(path)/1e6))
