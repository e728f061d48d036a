#!/usr/bin/env bash
# Wapio conformance: runs Wapio's Postman collection (seed 004, unchanged) with newman against a
# fresh `wharf serve` on the emulator, or against your own Wharf:
#   scripts/wapio-conformance/run.sh [--verbose]
#   WAPIO_BASE_URL=https://wharf.example.com WAPIO_TOKEN=wh_pat_… scripts/wapio-conformance/run.sh
# newman (pinned) is installed into .ci/node when missing. The collection is read from
# ../shared/seeds/ beside the repository unless WAPIO_COLLECTION names it. Prints
# `wapio-conformance: N passed, N failed`; exits 1 on any request outside its expected codes.
set -euo pipefail
cd "$(dirname "$0")/../.."
newman_version=6.2.2
# A step that cannot start still closes with its line, so .ci/run counts it.
fail() { echo "wapio-conformance: $1" >&2; echo "wapio-conformance: 0 passed, 1 failed"; exit 1; }
installed="$(node -p "try { require('./.ci/node/node_modules/newman/package.json').version } catch { '' }")"
if [ "$installed" != "$newman_version" ]; then
  npm install --prefix .ci/node --no-save --no-audit --no-fund --loglevel=error "newman@$newman_version" >&2 ||
    fail "could not install newman@$newman_version into .ci/node"
fi
if [ -z "${WAPIO_BASE_URL:-}" ] && [ -z "${WHARF_BIN:-}" ]; then
  cargo build -q -p wharf || fail "cargo build -p wharf failed"
fi
exec node scripts/wapio-conformance/run.mjs "$@"
