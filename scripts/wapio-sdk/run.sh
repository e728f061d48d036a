#!/usr/bin/env bash
# Wapio's Python SDK (PyPI `wapio` 0.2.0, unchanged) against a fresh `wharf serve` (debug
# build, emulator, new SQLite file): its contacts, groups, status and user calls, run by
# check.py with a session key, as the SDK's users would. The SDK is installed into
# .ci/wapio-venv (git-ignored) when missing. Prints `wapio-sdk: N passed, N failed`.
#   scripts/wapio-sdk/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
venv="$PWD/.ci/wapio-venv"
fail() { echo "wapio-sdk: $1" >&2; echo "wapio-sdk: 0 passed, 1 failed"; exit 1; }
if ! "$venv/bin/python" -c 'import wapio, sys; sys.exit(wapio.__version__ != "0.2.0")' 2>/dev/null; then
  python3 -m venv "$venv" || fail "could not create $venv"
  "$venv/bin/pip" install -q --disable-pip-version-check 'wapio==0.2.0' || fail "could not install wapio 0.2.0"
fi
if [ -z "${WHARF_BIN:-}" ]; then
  cargo build -q -p wharf || fail "cargo build -p wharf failed"
fi
bin="${WHARF_BIN:-$PWD/target/debug/wharf}"

work="$(mktemp -d)"
server=""
cleanup() {
  if [ -n "$server" ] && kill -0 "$server" 2>/dev/null; then kill "$server"; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
export WHARF_DATABASE_URL="sqlite://$work/wharf.db" WHARF_LISTEN="127.0.0.1:$port" \
  WHARF_DEFAULT_ENGINE=emulator WHARF_LOG=warn
"$bin" migrate >/dev/null || fail "migrate failed"
pat="$("$bin" accounts create --name wapio-sdk --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["pat"])')" ||
  fail "could not create an account"
(cd "$work" && exec "$bin" serve) >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null || { cat "$work/server.log" >&2; fail "the server did not start"; }

status=0
WAPIO_BASE_URL="http://127.0.0.1:$port" WAPIO_PAT="$pat" "$venv/bin/python" scripts/wapio-sdk/check.py || status=$?
if grep -q "panicked" "$work/server.log"; then
  grep -m 5 "panicked" "$work/server.log" >&2
  status=1
fi
exit "$status"
