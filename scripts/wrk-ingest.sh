#!/usr/bin/env bash
# wrk against one `wharf serve` on a fresh SQLite file, as issue 19 measured it: `GET /healthz`
# first, then text sends posted with the session's key (each 202 after its commit), both with
# 2 threads and 64 connections, the WAL's largest size during the sends, and how many times
# the WAL started over and how long each held the writer (from /metrics).
#   scripts/wrk-ingest.sh [SECS] [WHARF_BIN]
# SECS defaults to 20; WHARF_BIN to target/release/wharf (build it with
# `cargo build --release -p wharf`). Needs wrk, curl and jq.
# Every send posts the same body, set once (`wrk.body`), as `GET /healthz` is driven with no
# script: wrk then spends about as little per request on both. With WRK_BODIES=unique each
# send has its own text, made by a Lua function per request; that costs wrk about 37 us a
# request on the same two cores, which lowers the sends' figure against /healthz's.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-20}"
bin="${2:-target/release/wharf}"
dir="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
api="http://127.0.0.1:$port"
WHARF_EMULATOR_DELIVERED_AFTER_MS=-1 WHARF_EMULATOR_READ_AFTER_MS=-1 \
  "$bin" serve --listen "127.0.0.1:$port" --database-url "sqlite://$dir/wharf.db" \
  --rate-limit-per-minute 1000000000 --log warn >"$dir/out" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
until curl -sf "$api/readyz" >/dev/null; do sleep 0.05; done
sleep 0.2
pat="$(grep -o 'wh_pat_[A-Za-z0-9_]*' "$dir/out" | head -1)"
created="$(curl -sf -X POST "$api/v1/whatsapp-sessions" -H "Authorization: Bearer $pat" \
  -H 'content-type: application/json' -d '{}')"
session="$(jq -r .session.session_id <<<"$created")"
key="$(jq -r .session_api_key.raw <<<"$created")"
curl -sf -X POST "$api/v1/whatsapp-sessions/$session/connect" -H "Authorization: Bearer $pat" >/dev/null
curl -sf -X POST "$api/emulator/sessions/$session/scan" -H "Authorization: Bearer $pat" >/dev/null
if [ "${WRK_BODIES:-same}" = unique ]; then
  cat >"$dir/send.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $key"
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, nil, nil, '{"session_id":"$session","to":"+15550102030","text":"wrk ' .. n .. '"}')
end
response = function(status, headers, body)
  if status ~= 202 then io.stderr:write("unexpected " .. status .. ": " .. body .. "\n") end
end
LUA
else
  # No Lua per request or response: wrk counts answers other than 2xx/3xx ("Non-2xx"), and
  # the count of messages stored is checked against the 202s after the run.
  cat >"$dir/send.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $key"
wrk.body = '{"session_id":"$session","to":"+15550102030","text":"wrk"}'
LUA
fi
# The server's CPU time (user + system, in clock ticks), to print its cost per request: a
# figure less at the mercy of a noisy machine than a rate.
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
per_request() { # TICKS_BEFORE WRK_OUTPUT
  awk -v t0="$1" -v t1="$(ticks)" -v hz="$(getconf CLK_TCK)" \
    '/requests in/ {printf "server CPU per request: %.1f us\n", (t1 - t0) / hz * 1e6 / $1}' "$2"
}
echo "== GET /healthz (wrk -t2 -c64 -d${secs}s)"
t0="$(ticks)"
wrk -t2 -c64 -d"${secs}s" --latency "$api/healthz" | tee "$dir/wrk-healthz"
per_request "$t0" "$dir/wrk-healthz"
echo "== POST /api/send-message with the session key (wrk -t2 -c64 -d${secs}s)"
largest=0
( while kill -0 $pid 2>/dev/null; do
    s=$(stat -c %s "$dir/wharf.db-wal" 2>/dev/null || echo 0)
    [ "$s" -gt "$largest" ] && largest=$s && echo "$largest" >"$dir/wal-largest"
    sleep 0.1
  done ) &
watcher=$!
t0="$(ticks)"
wrk -t2 -c64 -d"${secs}s" --latency -s "$dir/send.lua" "$api/api/send-message" | tee "$dir/wrk"
per_request "$t0" "$dir/wrk"
kill $watcher 2>/dev/null || true
# Every answered send is a stored message (up to 64 more: answers wrk stopped waiting for).
answered="$(awk '/requests in/ {print $1}' "$dir/wrk")"
refused="$(awk '/Non-2xx/ {print $NF}' "$dir/wrk")"
stored="$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT COUNT(*) FROM messages").fetchone()[0])' "$dir/wharf.db")"
echo "sends answered: $answered, of them not 202: ${refused:-0}; messages stored: $stored"
if [ -n "${refused:-}" ] || [ "$stored" -lt "$answered" ] || [ "$stored" -gt $((answered + 64)) ]; then
  echo "MISMATCH: a send was refused, or the messages stored do not match the sends answered" >&2
  exit 1
fi
echo "largest WAL during the sends: $(cat "$dir/wal-largest" 2>/dev/null || echo 0) bytes"
# The WAL's start-overs and how long each held the writer (the sends waited that long), from
# the server's /metrics (binaries from before the metric print nothing here).
curl -sf "$api/metrics" | awk '
  /^wharf_sqlite_wal_restart_hold_seconds_count/ { n = $2 }
  /^wharf_sqlite_wal_restart_hold_seconds_sum/ { s = $2 }
  /^wharf_sqlite_wal_restart_hold_seconds_bucket/ {
    match($0, /le="[^"]*"/); b = b sprintf(" %s s: %d,", substr($0, RSTART + 4, RLENGTH - 5), $2)
  }
  END { if (n > 0) printf "WAL start-overs: %d, the writer held %.1f ms each on average; those that held it at most%s\n", n, s / n * 1000, substr(b, 1, length(b) - 1) }' ||
  echo "WAL start-overs: /metrics not readable"
