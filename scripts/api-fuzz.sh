#!/usr/bin/env bash
# API fuzz: schemathesis against the served /openapi.json of a fresh `wharf serve` (debug
# build, emulator engine), once on SQLite and once on a fresh PostgreSQL database. A backend
# fails on any 5xx, a response that does not match its documented status, content type or
# schema, or a server that is no longer up afterwards.
#   scripts/api-fuzz.sh [sqlite] [postgres]      (both when none is named)
# EXAMPLES (default 15) bounds the cases per operation; PG_URL is the PostgreSQL server
# (default postgres://postgres@127.0.0.1:5432), on which the database wharf_ci_fuzz is
# dropped and created. schemathesis comes from .ci/venv, created and filled when missing.
# Prints one closing line: `api-fuzz: N passed, N failed` (N counts backends).
set -euo pipefail
cd "$(dirname "$0")/.."
backends=("$@")
[ ${#backends[@]} -eq 0 ] && backends=(sqlite postgres)
examples="${EXAMPLES:-15}"
pg="${PG_URL:-postgres://postgres@127.0.0.1:5432}"
venv="$PWD/.ci/venv"
start=$(date +%s)

if [ ! -x "$venv/bin/st" ]; then
  echo "api-fuzz: installing schemathesis into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check 'schemathesis>=4.3,<5'
fi
cargo build -q -p wharf
bin="$PWD/target/debug/wharf"

work="$(mktemp -d)"
server=""
cleanup() {
  if [ -n "$server" ] && kill -0 "$server" 2>/dev/null; then kill "$server"; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# fuzz BACKEND: 0 when the run passed.
fuzz() {
  local backend="$1" url
  case "$backend" in
    sqlite) url="sqlite://$work/fuzz.db" ;;
    postgres)
      psql "$pg/postgres" -q -c "DROP DATABASE IF EXISTS wharf_ci_fuzz" -c "CREATE DATABASE wharf_ci_fuzz" >/dev/null || return 1
      url="$pg/wharf_ci_fuzz" ;;
    *) echo "api-fuzz: unknown backend $backend" >&2; return 1 ;;
  esac
  local port; port="$(free_port)"
  export WHARF_DATABASE_URL="$url" WHARF_LISTEN="127.0.0.1:$port" WHARF_DEFAULT_ENGINE=emulator \
    WHARF_RATE_LIMIT_PER_MINUTE=1000000 WHARF_LOG=warn \
    WHARF_SECRET_KEY="$(head -c 32 /dev/urandom | base64)"
  # (errexit does not apply inside a function called as a condition: each step checks.)
  "$bin" migrate >/dev/null || return 1
  local pat
  pat="$("$bin" accounts create --name fuzz --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["pat"])')" || return 1
  "$bin" serve >"$work/server-$backend.log" 2>&1 &
  server=$!
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null || { echo "api-fuzz ($backend): the server did not start" >&2; cat "$work/server-$backend.log" >&2; return 1; }
  local status=0
  # The event stream never ends by design; it is left out.
  # (From the scratch directory: schemathesis leaves a .schemathesis folder behind.)
  (cd "$work" && "$venv/bin/st" run "http://127.0.0.1:$port/openapi.json" \
    -H "Authorization: Bearer $pat" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --max-examples "$examples" --seed 1 --generation-database none --generation-allow-x00 false --workers 2 \
    --exclude-path /v1/events/stream --request-timeout 10 --no-color) \
    || status=$?
  if ! kill -0 "$server" 2>/dev/null; then
    echo "api-fuzz ($backend): the server is down after the run" >&2
    status=1
  else
    kill "$server"; wait "$server" 2>/dev/null || true
  fi
  server=""
  if grep -q "panicked" "$work/server-$backend.log"; then
    echo "api-fuzz ($backend): the server panicked:" >&2
    grep -m 5 "panicked" "$work/server-$backend.log" >&2
    status=1
  fi
  return "$status"
}

passed=0
failed=0
for backend in "${backends[@]}"; do
  echo "== api-fuzz on $backend"
  if fuzz "$backend"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "api-fuzz ($backend): FAILED"; fi
done
echo "api-fuzz took $(( $(date +%s) - start )) s"
echo "api-fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
