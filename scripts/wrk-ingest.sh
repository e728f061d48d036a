#!/usr/bin/env bash
# wrk against one `wharf serve` on a fresh SQLite file, as issue 19 measured it: `GET /healthz`
# first, then text sends posted with the session's key (each 202 after its commit), both with
# 2 threads and 64 connections, and the WAL's largest size during the sends.
#   scripts/wrk-ingest.sh [SECS] [WHARF_BIN]
# SECS defaults to 20; WHARF_BIN to target/release/wharf (build it with
# `cargo build --release -p wharf`). Needs wrk, curl and jq.
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
echo "== GET /healthz (wrk -t2 -c64 -d${secs}s)"
wrk -t2 -c64 -d"${secs}s" --latency "$api/healthz"
echo "== POST /api/send-message with the session key (wrk -t2 -c64 -d${secs}s)"
largest=0
( while kill -0 $pid 2>/dev/null; do
    s=$(stat -c %s "$dir/wharf.db-wal" 2>/dev/null || echo 0)
    [ "$s" -gt "$largest" ] && largest=$s && echo "$largest" >"$dir/wal-largest"
    sleep 0.1
  done ) &
watcher=$!
wrk -t2 -c64 -d"${secs}s" --latency -s "$dir/send.lua" "$api/api/send-message"
kill $watcher 2>/dev/null || true
echo "largest WAL during the sends: $(cat "$dir/wal-largest" 2>/dev/null || echo 0) bytes"
