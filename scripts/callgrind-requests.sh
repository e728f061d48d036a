#!/usr/bin/env bash
# Instructions a request costs the server, counted by valgrind's callgrind: `GET /healthz`
# and text sends (`POST /api/send-message` with a session key), each on a fresh SQLite file.
# A count of instructions does not depend on how busy the machine is (the same binary and
# requests give the same count to within a fraction of a percent), so it can compare two
# builds whose difference a rate on a shared 2-core machine would drown.
#   scripts/callgrind-requests.sh [REQUESTS] [WHARF_BIN]
# REQUESTS defaults to 2000 of each kind, after 300 not counted; WHARF_BIN to
# target/release/wharf. Needs valgrind, curl, jq and python3. Takes about a minute.
#
# What it counts: user-space instructions of every thread of the server between the first
# and the last counted request (the kernel's work, the system calls, is not counted). The
# session is created but not connected, so nothing is dispatched: a send's count is its
# acceptance (HTTP, the handler, the group commit) and the checkpoints of what it wrote.
# Four keep-alive clients send at once, so the group commit's groups hold at most four
# sends (under wrk they hold 10-30): the commit thread's count a send is higher here than
# under load. Printed per thread group: the tokio workers (HTTP and handlers), the group
# commit's thread (`wharf-commit`) and SQLite's other connections (sqlx's threads: the
# checkpointer, reads).
set -euo pipefail
cd "$(dirname "$0")/.."
requests="${1:-2000}"
requests=$(((requests / 4) * 4)) # four clients, each the same share
bin="${2:-target/release/wharf}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cat >"$work/client.py" <<'PY'
import http.client, json, sys, threading
host, kind, key, session, n = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
body = json.dumps({"session_id": session, "to": "+15550102030", "text": "callgrind"})
failures = []
def client(count):
    c = http.client.HTTPConnection(host)
    for _ in range(count):
        if kind == "healthz":
            c.request("GET", "/healthz")
            expected = 200
        else:
            c.request("POST", "/api/send-message", body,
                      {"Content-Type": "application/json", "Authorization": "Bearer " + key})
            expected = 202
        r = c.getresponse()
        data = r.read()
        if r.status != expected:
            failures.append((r.status, data[:200]))
threads = [threading.Thread(target=client, args=(n // 4,)) for _ in range(4)]
for t in threads: t.start()
for t in threads: t.join()
if failures:
    sys.exit(f"{len(failures)} unexpected answers, first: {failures[0]}")
PY

measure() { # KIND -> prints instructions per request by thread group
  local kind=$1 dir="$work/$1"
  mkdir -p "$dir"
  local port
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  local api="http://127.0.0.1:$port"
  valgrind --tool=callgrind --separate-threads=yes --dump-instr=no \
    --callgrind-out-file="$dir/cg" "$bin" serve --listen "127.0.0.1:$port" \
    --database-url "sqlite://$dir/wharf.db" --rate-limit-per-minute 1000000000 --log warn \
    >"$dir/out" 2>"$dir/valgrind" &
  local pid=$!
  until curl -sf "$api/readyz" >/dev/null; do sleep 0.2; done
  local pat created session key
  pat="$(grep -o 'wh_pat_[A-Za-z0-9_]*' "$dir/out" | head -1)"
  created="$(curl -sf -X POST "$api/v1/whatsapp-sessions" -H "Authorization: Bearer $pat" \
    -H 'content-type: application/json' -d '{}')"
  session="$(jq -r .session.session_id <<<"$created")"
  key="$(jq -r .session_api_key.raw <<<"$created")"
  python3 "$work/client.py" "127.0.0.1:$port" "$kind" "$key" "$session" 300
  callgrind_control -z "$pid" >/dev/null 2>&1
  python3 "$work/client.py" "127.0.0.1:$port" "$kind" "$key" "$session" "$requests"
  callgrind_control -d "$pid" >/dev/null 2>&1
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  # The dump after zeroing is part 1: one file a thread (`cg.1-NN`), each with its thread's
  # name in the function it started in.
  python3 - "$dir" "$requests" "$kind" <<'PY'
import glob, re, sys
d, n, kind = sys.argv[1], int(sys.argv[2]), sys.argv[3]
groups = {}
for f in sorted(glob.glob(f"{d}/cg.1-*")):
    text = open(f, errors="replace").read()
    m = re.search(r"^(?:summary|totals):\s+(\d+)", text, re.M)
    total = int(m.group(1)) if m else 0
    if "spawn_batcher" in text:
        name = "group commit (wharf-commit)"
    elif "multi_thread::worker::Context::run_task" in text:
        name = "tokio workers"
    elif "ConnectionWorker::establish" in text:
        name = "SQLite's other connections (sqlx)"
    else:
        name = "other threads"
    groups[name] = groups.get(name, 0) + total
print(f"{kind}: {sum(groups.values()) / n:,.0f} instructions a request")
for name, total in sorted(groups.items(), key=lambda kv: -kv[1]):
    print(f"  {name}: {total / n:,.0f}")
PY
}

measure healthz
measure send
