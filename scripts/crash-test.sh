#!/usr/bin/env bash
# Crash test: queue SIZE messages, SIGKILL the server in the middle of dispatching them,
# restart it, and check every message reached a terminal status once and every event reached
# the webhook receiver.
#   scripts/crash-test.sh SIZE [DATABASE_URL]
# SIZE defaults to 10000. Without DATABASE_URL a fresh SQLite file is used; a PostgreSQL URL
# must name an empty database. Set PROFILE=release for an optimized build.
# INSTANCES=N (PostgreSQL only) runs N instances sharing 30 sessions and SIGKILLs one of them:
# the others take its sessions over (docs/scaling.md).
set -euo pipefail
cd "$(dirname "$0")/.."
size="${1:-10000}"
profile="${PROFILE:-debug}"
flag=()
[ "$profile" = release ] && flag=(--release)
cargo build -q "${flag[@]}" -p wharf -p wharf-bench
args=()
[ -n "${2:-}" ] && args=(--database-url "$2")
exec "target/$profile/wharf-bench" "${args[@]}" crash --messages "$size" --instances "${INSTANCES:-1}"
