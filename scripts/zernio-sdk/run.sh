#!/usr/bin/env bash
# Zernio's own Python SDK (`late-sdk` from PyPI, unchanged) drives Wharf's Business API
# template, business-profile and phone-number routes against a fresh `wharf serve` (debug build, emulator
# engine, SQLite, two numbers in the pool).
#   scripts/zernio-sdk/run.sh
# LATE_SDK pins the version (default: the newest). The SDK comes from .ci/venv, created and
# filled when missing. Prints one closing line: `zernio-sdk: N passed, M failed`.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv="$PWD/.ci/venv"
if ! "$venv/bin/python" -c 'from late import Zernio' 2>/dev/null; then
  echo "zernio-sdk: installing late-sdk into $venv"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  # The SDK's models validate e-mail fields but it does not depend on email-validator.
  "$venv/bin/pip" install -q --disable-pip-version-check "late-sdk${LATE_SDK:+==$LATE_SDK}" email-validator
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

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
export WHARF_DATABASE_URL="sqlite://$work/sdk.db" WHARF_LISTEN="127.0.0.1:$port" \
  WHARF_DEFAULT_ENGINE=emulator WHARF_LOG=warn \
  WHARF_SECRET_KEY="$(head -c 32 /dev/urandom | base64)"
"$bin" migrate >/dev/null
pat="$("$bin" accounts create --name sdk --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["pat"])')"
"$bin" numbers add +12125550100 --country US --locality "New York" >/dev/null
"$bin" numbers add +13105550101 --country US --locality "Los Angeles" >/dev/null
"$bin" serve >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done

if WHARF_URL="http://127.0.0.1:$port" WHARF_PAT="$pat" "$venv/bin/python" scripts/zernio-sdk/calls.py 2>&1 | tee "$work/out.txt"; [ "${PIPESTATUS[0]}" -eq 0 ]; then
  echo "zernio-sdk: $(grep -c '^ok:' "$work/out.txt") passed, 0 failed"
else
  echo "--- server log"; tail -n 50 "$work/server.log"
  echo "zernio-sdk: $(grep -c '^ok:' "$work/out.txt") passed, 1 failed"
  exit 1
fi
