"""The Airflow web UI on the embedded default: api-server, scheduler, dag-processor and triggerer.

    make ui                      (or: . scripts/env.sh && python scripts/ui.py --port 8080)

Everything runs from the embedded state (``MLOPS_HOME``: SQLite metadata DB, local lake, MLflow on SQLite,
the outbox for emails): no Docker, no PostgreSQL. The components are what ``airflow standalone`` starts
(LocalExecutor on SQLite), started one by one so that nothing listens beyond 127.0.0.1: the API server
binds to it, and the scheduler and triggerer skip their task-log servers (standalone's bind every
address; the API server reads task logs from the local log folder). A login of its own: user ``admin``,
a password generated once into ``MLOPS_HOME/airflow/ui-passwords.json`` (printed at start). Extra links
point at this UI (``[api] base_url``). Components log to ``MLOPS_HOME/airflow/ui-logs/``. Ctrl-C (or
SIGTERM) stops every component and the tasks they run; nothing is left running.

Land your files under ``MLOPS_HOME/landing/<project>/`` (see the project's ``source``), then trigger
``<project>__ingest`` from its form with the ``day`` param; the other DAGs follow through their assets.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
POOL = ("mlops_promotion", "1", "one alias writer at a time (promote / rollback)")
COMPONENTS = {
    "api-server": ["api-server"],  # host and port from [api] host / port
    "scheduler": ["scheduler", "--skip-serve-logs"],
    "dag-processor": ["dag-processor"],
    "triggerer": ["triggerer", "--skip-serve-logs"],
}


def ui_env(port: int) -> dict[str, str]:
    """The environment of the UI's components: scripts/env.sh's embedded default plus the UI's settings."""
    home = Path(os.environ.get("MLOPS_HOME") or REPO / ".mlops").resolve()
    airflow_home = Path(os.environ.get("AIRFLOW_HOME") or home / "airflow")
    env = {**os.environ, "MLOPS_REPO_ROOT": str(REPO), "MLOPS_HOME": str(home), "AIRFLOW_HOME": str(airflow_home),
           "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "FEAST_USAGE": "False", "GX_ANALYTICS_ENABLED": "False",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    if not env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"):
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{airflow_home / 'airflow.db'}"
    base_url = f"http://127.0.0.1:{port}"
    env.update({
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": env.get("AIRFLOW__CORE__PARALLELISM", "2"),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": base_url,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base_url}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(airflow_home / "ui-passwords.json"),
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(airflow_home / "logs"),
    })
    return env


def _private_json(path: Path, make: dict[str, str]) -> dict[str, str]:
    """``path``'s JSON, written once (mode 0600) with ``make`` when it does not exist yet."""
    if path.exists():
        return json.loads(path.read_text())
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(make, f)
    return make


def ensure_login(airflow_home: Path) -> str:
    """The admin password: generated once, kept in ``ui-passwords.json`` (mode 0600)."""
    return _private_json(airflow_home / "ui-passwords.json", {"admin": secrets.token_urlsafe(12)})["admin"]


def shared_secrets(airflow_home: Path) -> dict[str, str]:
    """The secrets every component must agree on, generated once into ``ui-secrets.json`` (mode 0600).

    Without them each component draws its own random JWT secret: the scheduler's task tokens are then
    refused by the API server ("Invalid auth token") and no task runs.
    """
    return _private_json(airflow_home / "ui-secrets.json", {
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
    })


def wait_healthy(url: str, procs: dict[str, subprocess.Popen], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, proc in procs.items():
            if proc.poll() is not None:
                raise SystemExit(f"{name} exited with {proc.returncode} before the UI came up (see its log)")
        try:
            with urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=5) as response:
                health = json.loads(response.read())
            if all((health.get(c) or {}).get("status") == "healthy"
                   for c in ("metadatabase", "scheduler", "dag_processor", "triggerer")):
                return
        except OSError:
            pass
        time.sleep(2)
    raise SystemExit(f"the UI did not become healthy within {timeout:.0f}s (see the component logs)")


def stop(procs: dict[str, subprocess.Popen]) -> None:
    """Stop each component's process group (the component and the task processes it started), by its id."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not interrupt the shutdown
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    for proc in procs.values():
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    for proc in procs.values():
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=int(os.environ.get("MLOPS_UI_PORT", "8080")))
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for the UI to become healthy")
    args = parser.parse_args(argv)

    env = ui_env(args.port)
    airflow_home = Path(env["AIRFLOW_HOME"])
    password = ensure_login(airflow_home)
    env.update(shared_secrets(airflow_home))
    logs = airflow_home / "ui-logs"
    logs.mkdir(parents=True, exist_ok=True)
    airflow = str(Path(sys.executable).with_name("airflow"))
    print(f"[ui] metadata DB {env['AIRFLOW__DATABASE__SQL_ALCHEMY_CONN']}; state under {env['MLOPS_HOME']}", flush=True)
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
    subprocess.run([airflow, "pools", "set", *POOL], env=env, check=True, stdout=subprocess.DEVNULL)
    procs: dict[str, subprocess.Popen] = {}

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)  # the finally below stops every component, once

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        for name, command in COMPONENTS.items():
            with open(logs / f"{name}.log", "ab") as log:
                # A session (process group) of its own: one signal stops it and the tasks it started.
                procs[name] = subprocess.Popen([airflow, *command], env=env, stdout=log, stderr=subprocess.STDOUT,
                                               start_new_session=True)
            print(f"[ui] started {name} (pid {procs[name].pid}, log {logs / f'{name}.log'})", flush=True)
        wait_healthy(env["AIRFLOW__API__BASE_URL"], procs, args.timeout)
        print(f"\n[ui] Airflow UI: {env['AIRFLOW__API__BASE_URL']}  (user admin, password {password})\n"
              f"[ui] trigger <project>__ingest with a day whose files are under {env['MLOPS_HOME']}/landing/<project>/;"
              " Ctrl-C stops everything.\n", flush=True)
        while all(p.poll() is None for p in procs.values()):
            time.sleep(1)
        dead = {n: p.returncode for n, p in procs.items() if p.poll() is not None}
        print(f"[ui] {dead} exited: stopping the others", flush=True)
        return 1
    finally:
        stop(procs)


if __name__ == "__main__":
    sys.exit(main())
