"""docker-compose.yaml is valid and honest: this machine has no Docker engine, so check what `config` can.

Needs Debian's ``docker-compose`` (``scripts/test-deps.sh`` installs it, ``make test`` runs that); a plain
pytest run skips without it, ``make test`` fails (tests/conftest.py).
"""

from __future__ import annotations

import base64
import re
import secrets
import shutil
import subprocess

import pytest
import yaml

from devkit.stack import REPO

pytestmark = pytest.mark.integration

COMPOSE = REPO / "docker-compose.yaml"
EXAMPLE = REPO / ".env.example"
SERVICES = {"postgres", "redis", "minio", "minio-init", "mailpit", "mlflow", "airflow-init", "airflow-apiserver",
            "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "airflow-worker"}
ONE_SHOT = {"minio-init", "airflow-init"}


def _compose(*args: str, env_file) -> subprocess.CompletedProcess:
    binary = shutil.which("docker-compose")
    if not binary:
        pytest.skip("docker-compose is not installed (run scripts/test-deps.sh; make test does)")
    return subprocess.run([binary, "-f", str(COMPOSE), "--project-directory", str(REPO), "--env-file", str(env_file),
                           *args], capture_output=True, text=True, timeout=120)


def _filled_env(tmp_path):
    """.env.example with every empty value filled the way its comments say (what a user does)."""
    lines = []
    for line in EXAMPLE.read_text().splitlines():
        if re.fullmatch(r"[A-Z0-9_]+=", line):
            key = line[:-1]
            value = (base64.urlsafe_b64encode(secrets.token_bytes(32)).decode() if key == "AIRFLOW_FERNET_KEY"
                     else secrets.token_urlsafe(24))
            line = f"{key}={value}"
        lines.append(line)
    path = tmp_path / "compose.env"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_compose_file_validates_with_filled_env(tmp_path):
    env_file = _filled_env(tmp_path)
    result = _compose("config", "-q", env_file=env_file)
    assert result.returncode == 0, result.stderr
    result = _compose("config", env_file=env_file)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    services = config["services"]
    assert set(services) == SERVICES

    for name, service in services.items():
        if name not in ONE_SHOT:
            assert "healthcheck" in service, f"{name} has no healthcheck"
        for port in service.get("ports", []):
            published = port if isinstance(port, str) else f"{port.get('host_ip', '')}:{port.get('published')}"
            assert published.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback by default"

    # Scalable workers: no fixed name, no published port.
    worker = services["airflow-worker"]
    assert "container_name" not in worker and not worker.get("ports")
    assert worker["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    # A slot frees within ~1 s of its task's end, as on the no-Docker stack (docs/production.md, "Worker hand-overs").
    assert worker["environment"]["AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL"] == "1"
    # Start order waits for health, and for the one-shot init jobs to finish.
    for name in ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "airflow-worker"):
        depends = services[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["redis"]["condition"] == "service_healthy"
        assert depends["airflow-init"]["condition"] == "service_completed_successfully"
    assert services["mlflow"]["depends_on"]["minio-init"]["condition"] == "service_completed_successfully"
    # The API is authenticated: simple auth manager users and no "everyone is admin".
    api_env = services["airflow-apiserver"]["environment"]
    assert api_env.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "False").lower() != "true"
    assert api_env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"].endswith(":admin")


def test_compose_refuses_to_start_without_secrets(tmp_path):
    """The example ships no secret: with its empty values compose stops and names what is missing."""
    result = _compose("config", "-q", env_file=EXAMPLE)
    assert result.returncode != 0
    assert re.search(r"set [A-Z_]+ in \.env", result.stderr), result.stderr


def test_no_secret_is_hard_coded():
    text = COMPOSE.read_text()
    for match in re.finditer(r"(?im)^\s*([A-Z0-9_]*(PASSWORD|SECRET|FERNET_KEY|SECRET_KEY))(?!S_FILE):\s*(.+)$", text):
        assert "${" in match.group(3), f"{match.group(1)} has a literal value in docker-compose.yaml"
    for line in EXAMPLE.read_text().splitlines():
        if re.match(r"[A-Z0-9_]*(PASSWORD|SECRET|FERNET_KEY)[A-Z0-9_]*=", line):
            assert line.endswith("="), f".env.example ships a value: {line.split('=')[0]}"
