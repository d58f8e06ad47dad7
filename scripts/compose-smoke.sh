#!/usr/bin/env bash
# Bring docker-compose.yaml up for real on a machine with a Docker engine, check it, take it down.
#   scripts/compose-smoke.sh            (needs docker compose v2 or docker-compose 1.29+; ~5-10 minutes)
# Checks: the image builds; airflow-init exits 0 (it writes /opt/airflow/auth/passwords.json into a named
# volume as the runtime user); the API server, scheduler and worker turn healthy; the admin can log in; the
# named volumes' mount points are owned by the runtime user. Everything runs under a throw-away project name
# with generated secrets, and `down -v` removes its containers and volumes whatever happens.
# This machine has no Docker engine: tests/integration/stack/test_image_layout.py is the offline part.
set -euo pipefail
cd "$(dirname "$0")/.."

if docker compose version >/dev/null 2>&1; then COMPOSE=(docker compose); else COMPOSE=(docker-compose); fi
PROJECT="mlops-smoke-$$"
ENV_FILE="$(mktemp)"
trap '"${COMPOSE[@]}" -p "$PROJECT" --env-file "$ENV_FILE" down -v --remove-orphans >/dev/null 2>&1 || true; rm -f "$ENV_FILE"' EXIT

python3 - "$ENV_FILE" <<'EOF'
import base64, re, secrets, sys
# Ports of their own, so a developer's running stack is not disturbed.
ports = {"AIRFLOW_PORT": "18080", "AIRFLOW_BASE_URL": "http://localhost:18080", "MLFLOW_PORT": "15000",
         "MINIO_CONSOLE_PORT": "19001", "MAILPIT_PORT": "18025"}
lines = []
for line in open(".env.example").read().splitlines():
    key = line.split("=", 1)[0]
    if key in ports:
        line = f"{key}={ports[key]}"
    elif re.fullmatch(r"[A-Z0-9_]+=", line):
        key = line[:-1]
        value = (base64.urlsafe_b64encode(secrets.token_bytes(32)).decode() if key == "AIRFLOW_FERNET_KEY"
                 else secrets.token_urlsafe(24))
        line = f"{key}={value}"
    lines.append(line)
open(sys.argv[1], "w").write("\n".join(lines) + "\n")
EOF
set -a; . "$ENV_FILE"; set +a
run() { "${COMPOSE[@]}" -p "$PROJECT" --env-file "$ENV_FILE" "$@"; }

echo "== build and start ($PROJECT)"
run up -d --build --wait --wait-timeout 600 airflow-apiserver airflow-scheduler airflow-worker

echo "== airflow-init exited 0"
init_id="$(run ps -a -q airflow-init)"
code="$(docker inspect -f '{{.State.ExitCode}}' "$init_id")"
[ "$code" = 0 ] || { run logs airflow-init | tail -50; echo "airflow-init exited $code"; exit 1; }

echo "== mount points owned by the runtime user"
run exec -T airflow-scheduler bash -c \
  'for d in /opt/airflow/auth /opt/airflow/mlops /opt/airflow/logs; do [ -w "$d" ] || { ls -ld "$d"; exit 1; }; done; ls -ld /opt/airflow/auth /opt/airflow/mlops'

echo "== admin can log in"
port="$(grep -E '^AIRFLOW_PORT=' "$ENV_FILE" | cut -d= -f2)"
curl -fsS -X POST "http://127.0.0.1:${port}/auth/token" -H 'Content-Type: application/json' \
  -d "{\"username\": \"${AIRFLOW_ADMIN_USER:-admin}\", \"password\": \"${AIRFLOW_ADMIN_PASSWORD}\"}" | grep -q access_token

echo "compose smoke: OK"
