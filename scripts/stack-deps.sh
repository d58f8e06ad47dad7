#!/usr/bin/env bash
# What the production stack (scripts/stack.py) needs besides the venv: its local S3 endpoint, s3rver, from
# the npm registry (pinned in scripts/s3_server/package-lock.json) on Node.js >= 18. Idempotent: does
# nothing when scripts/s3_server/node_modules matches the lock. Installs Debian's nodejs and npm with
# apt-get when the machine has no Node.js (as root or through passwordless sudo), or fails with the command.
# Called by `make stack-up`, `make test-stack` and scripts/test-deps.sh (so by `make test` and CI).
set -euo pipefail
cd "$(dirname "$0")/s3_server"

node_ok() {
  command -v node >/dev/null && command -v npm >/dev/null &&
    [ "$(node -p 'process.versions.node.split(".")[0]')" -ge 18 ]
}

if ! node_ok; then
  command_line="apt-get update && apt-get install -y --no-install-recommends nodejs npm"
  command -v apt-get >/dev/null || { echo "error: the stack needs Node.js >= 18 and npm (scripts/stack-deps.sh)" >&2; exit 1; }
  if [ "$(id -u)" -eq 0 ]; then as_root=(); elif sudo -n true 2>/dev/null; then as_root=(sudo -n); else
    echo "error: the stack needs Node.js >= 18 and npm; run: sudo sh -c '$command_line'" >&2; exit 1
  fi
  echo "scripts/stack-deps.sh: installing nodejs and npm (apt-get)" >&2
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  node_ok || { echo "error: Node.js >= 18 still missing after apt-get; run: $command_line" >&2; exit 1; }
fi

# npm ci reinstalls from the lock; skip it when the installed tree already came from this lock.
stamp=node_modules/.package-lock.json
if [ -x node_modules/.bin/s3rver ] && [ -f "$stamp" ] && [ "$stamp" -nt package-lock.json ]; then
  exit 0
fi
for attempt in 1 2; do
  npm ci --no-audit --no-fund --loglevel=error >/dev/null && break
  [ "$attempt" = 2 ] && { echo "error: npm ci failed in scripts/s3_server (see above)" >&2; exit 1; }
  sleep 10
done
