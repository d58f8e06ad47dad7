#!/usr/bin/env bash
# The system tools the test suite needs besides the venv (`make install`) and the local PostgreSQL and
# Redis: Debian's chromium and chromium-driver (the stack's UI test drives the web UI) and docker-compose
# (validates docker-compose.yaml), and the stack's S3 endpoint (scripts/stack-deps.sh: Node.js and s3rver).
# The one place that installs them; `make test` (and so CI) calls it.
# Idempotent: does nothing when they are all there. Otherwise installs the missing packages with apt-get,
# non-interactively, as root or through passwordless sudo; fails with the command to run when it cannot.
set -euo pipefail
"$(dirname "$0")/stack-deps.sh"

tools=(chromium chromedriver docker-compose)
declare -A package=([chromium]=chromium [chromedriver]=chromium-driver [docker-compose]=docker-compose)

missing_packages() {
  local tool
  for tool in "${tools[@]}"; do command -v "$tool" >/dev/null || echo "${package[$tool]}"; done
}

mapfile -t missing < <(missing_packages)
[ ${#missing[@]} -eq 0 ] && exit 0

command_line="apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
fail() {
  echo "error: the tests need ${missing[*]} (scripts/test-deps.sh): $1" >&2
  exit 1
}
command -v apt-get >/dev/null \
  || fail "no apt-get on this machine; install chromium, chromedriver and docker-compose with its package manager"
if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  fail "not root and no passwordless sudo; run: sudo sh -c '$command_line'"
fi

log="$(mktemp -t mlops-test-deps.XXXXXX.log)"
echo "scripts/test-deps.sh: installing ${missing[*]} (apt-get, log: $log)" >&2
for attempt in 1 2; do
  if { "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
       "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
         "${missing[@]}"; } >"$log" 2>&1; then
    break
  fi
  [ "$attempt" = 2 ] && fail "apt-get failed (last lines below, whole log: $log); run: $command_line
$(tail -n 15 "$log")"
  sleep 10
done

mapfile -t still < <(missing_packages)
[ ${#still[@]} -eq 0 ] || fail "still missing after apt-get (${still[*]}; log: $log)"
rm -f "$log"
