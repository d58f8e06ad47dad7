#!/usr/bin/env python
"""The production topology without Docker: real services on loopback, started from the installed packages.

``python scripts/stack.py up|down|status|env`` (``make stack-up`` / ``stack-down`` / ``stack-status``).

It uses the PostgreSQL and Redis already running on the machine (creates its own roles and databases,
and uses its own Redis db indexes), and starts, bound to 127.0.0.1 only:

* ``s3rver`` (npm, ``scripts/stack-deps.sh`` installs it) as the S3 endpoint (lake, reports, MLflow artifacts,
  an S3 source prefix), objects kept as files under ``stack/s3``;
* an SMTP sink (``scripts/stack_smtp.py``) that stores every received message as an ``.eml`` file;
* an MLflow tracking server (PostgreSQL backend store, artifacts proxied to S3);
* Airflow with the CeleryExecutor (Redis broker, PostgreSQL result backend): api-server, scheduler,
  dag-processor, triggerer and two Celery workers with distinct host names, each with a task-log
  server on its own loopback port and its own private ``MLOPS_HOME`` (``stack/workers/<name>``), as
  separate hosts would have: workers share nothing on disk; locks and alert markers live in the
  PostgreSQL database ``<prefix>_state`` (connection ``mlops_state_default``).

Everything it writes lives in ``$MLOPS_HOME/stack/``: ``pids/``, ``logs/``, ``airflow/`` (AIRFLOW_HOME),
``mail/`` (received messages), ``secrets.json`` (generated passwords and keys, mode 0600, never
committed) and ``stack.env`` (URLs and credentials to ``source`` for the CLI and the tests).
``down`` stops every process it started (the whole process tree) and checks that the ports are free.

Configuration (environment variables, defaults in brackets): ports ``MLOPS_STACK_API_PORT`` [28080],
``MLOPS_STACK_S3_PORT`` [29000], ``MLOPS_STACK_MLFLOW_PORT`` [25500], ``MLOPS_STACK_SMTP_PORT`` [21025],
``MLOPS_STACK_LOG_PORT`` [28793, worker n uses +2(n-1)]; PostgreSQL ``MLOPS_STACK_PG_HOST`` [127.0.0.1],
``MLOPS_STACK_PG_PORT`` [5432], ``MLOPS_STACK_PG_ADMIN`` [postgres] (a role allowed to create roles and
databases; ``MLOPS_STACK_PG_ADMIN_PASSWORD`` if it needs one), ``MLOPS_STACK_DB_PREFIX`` [mlops] (databases
and roles ``<prefix>_airflow``, ``_mlflow``, ``_source``, ``_feast``, ``_state``); Redis ``MLOPS_STACK_REDIS_HOST``
[127.0.0.1], ``MLOPS_STACK_REDIS_PORT`` [6379], ``MLOPS_STACK_REDIS_BROKER_DB`` [8],
``MLOPS_STACK_REDIS_FEAST_DB`` [9]; ``MLOPS_STACK_WORKERS`` [2]. ``up --fresh`` drops the stack's
databases, flushes its Redis db indexes and empties the workers' homes first.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
LOOPBACK = "127.0.0.1"


# -- configuration ---------------------------------------------------------------------------------
def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


@dataclass
class Config:
    home: Path = field(default_factory=lambda: Path(os.environ.get("MLOPS_HOME") or REPO / ".mlops").resolve())
    api_port: int = field(default_factory=lambda: _env_int("MLOPS_STACK_API_PORT", 28080))
    s3_port: int = field(default_factory=lambda: _env_int("MLOPS_STACK_S3_PORT", 29000))
    mlflow_port: int = field(default_factory=lambda: _env_int("MLOPS_STACK_MLFLOW_PORT", 25500))
    smtp_port: int = field(default_factory=lambda: _env_int("MLOPS_STACK_SMTP_PORT", 21025))
    log_port: int = field(default_factory=lambda: _env_int("MLOPS_STACK_LOG_PORT", 28793))
    workers: int = field(default_factory=lambda: _env_int("MLOPS_STACK_WORKERS", 2))
    pg_host: str = field(default_factory=lambda: os.environ.get("MLOPS_STACK_PG_HOST") or LOOPBACK)
    pg_port: int = field(default_factory=lambda: _env_int("MLOPS_STACK_PG_PORT", 5432))
    pg_admin: str = field(default_factory=lambda: os.environ.get("MLOPS_STACK_PG_ADMIN") or "postgres")
    db_prefix: str = field(default_factory=lambda: os.environ.get("MLOPS_STACK_DB_PREFIX") or "mlops")
    redis_host: str = field(default_factory=lambda: os.environ.get("MLOPS_STACK_REDIS_HOST") or LOOPBACK)
    redis_port: int = field(default_factory=lambda: _env_int("MLOPS_STACK_REDIS_PORT", 6379))
    broker_db: int = field(default_factory=lambda: _env_int("MLOPS_STACK_REDIS_BROKER_DB", 8))
    feast_db: int = field(default_factory=lambda: _env_int("MLOPS_STACK_REDIS_FEAST_DB", 9))
    bucket: str = field(default_factory=lambda: os.environ.get("MLOPS_STACK_BUCKET") or "mlops")

    @property
    def dir(self) -> Path:
        return self.home / "stack"

    @property
    def airflow_home(self) -> Path:
        return self.dir / "airflow"

    @property
    def maildir(self) -> Path:
        return self.dir / "mail"

    def db(self, name: str) -> str:
        return f"{self.db_prefix}_{name}"

    def worker_home(self, name: str) -> Path:
        """The private ``MLOPS_HOME`` of worker ``name``."""
        return self.dir / "workers" / name

    def worker_log_port(self, n: int) -> int:
        return self.log_port + 2 * (n - 1)

    @property
    def api_url(self) -> str:
        return f"http://{LOOPBACK}:{self.api_port}"

    @property
    def s3_url(self) -> str:
        return f"http://{LOOPBACK}:{self.s3_port}"

    @property
    def mlflow_url(self) -> str:
        return f"http://{LOOPBACK}:{self.mlflow_port}"


S3_SERVER_KEY = "S3RVER"
S3_SERVER = REPO / "scripts" / "s3_server" / "node_modules" / "s3rver" / "bin" / "s3rver.js"
# AWS SDKs (botocore >= 1.36, the C++ SDK in pyarrow) send checksummed aws-chunked uploads by default, which
# S3-compatible servers other than AWS (s3rver, older MinIO) store verbatim: checksums only where required.
S3_COMPAT = {"AWS_REQUEST_CHECKSUM_CALCULATION": "WHEN_REQUIRED", "AWS_RESPONSE_CHECKSUM_VALIDATION": "WHEN_REQUIRED"}


def s3_server_argv(cfg: Config) -> list[str]:
    # Node >= 17 (OpenSSL 3) lacks the legacy cipher s3rver's list continuation tokens use.
    return [shutil.which("node") or "node", "--openssl-legacy-provider", str(S3_SERVER), "--directory",
            str(cfg.dir / "s3"), "--address", LOOPBACK, "--port", str(cfg.s3_port), "--silent"]


def load_secrets(cfg: Config) -> dict[str, str]:
    """Passwords and keys of this stack: generated once, kept in ``secrets.json`` (0600), env overrides."""
    path = cfg.dir / "secrets.json"
    stored: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}

    def token() -> str:
        return secrets.token_urlsafe(24)

    wanted = {
        "admin_user": lambda: "admin",
        "admin_password": token,
        "fernet_key": lambda: base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        "api_secret_key": token,
        "jwt_secret": lambda: secrets.token_urlsafe(48),
        **{f"pg_{name}_password": token for name in DATABASES},
    }
    overrides = {"admin_user": "MLOPS_STACK_ADMIN_USER", "admin_password": "MLOPS_STACK_ADMIN_PASSWORD"}
    for key, make in wanted.items():
        from_env = os.environ.get(overrides[key], "") if key in overrides else ""
        stored[key] = from_env or stored.get(key) or make()
    # s3rver accepts one fixed key pair (a loopback stand-in; a real S3 or MinIO has keys of its own).
    stored.update(s3_access_key=S3_SERVER_KEY, s3_secret_key=S3_SERVER_KEY)
    cfg.dir.mkdir(parents=True, exist_ok=True)
    _write_private(path, json.dumps(stored, indent=2) + "\n")
    return stored


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)


# One role and database each: Airflow metadata, MLflow, the source data, the Feast registry, coordination state.
DATABASES = ("airflow", "mlflow", "source", "feast", "state")


def pg_url(cfg: Config, sec: dict[str, str], name: str, driver: str = "postgresql") -> str:
    role = cfg.db(name)
    return f"{driver}://{role}:{sec[f'pg_{name}_password']}@{cfg.pg_host}:{cfg.pg_port}/{role}"


def service_env(cfg: Config, sec: dict[str, str]) -> dict[str, str]:
    """What the settings loader, the tests and a user's shell need to reach the stack's services."""
    return {
        "MLOPS_HOME": str(cfg.home),
        "MLOPS_STACK_DIR": str(cfg.dir),
        "MLOPS_STACK_API_URL": cfg.api_url,
        "MLOPS_STACK_ADMIN_USER": sec["admin_user"],
        "MLOPS_STACK_ADMIN_PASSWORD": sec["admin_password"],
        "MLOPS_STACK_MAILDIR": str(cfg.maildir),
        "MLOPS_MLFLOW_URL": cfg.mlflow_url,
        "MLOPS_S3_ENDPOINT_URL": cfg.s3_url,
        "MLOPS_S3_ACCESS_KEY_ID": sec["s3_access_key"],
        "MLOPS_S3_SECRET_ACCESS_KEY": sec["s3_secret_key"],
        "MLOPS_S3_BUCKET": cfg.bucket,
        **S3_COMPAT,
        "MLOPS_REDIS_HOST": cfg.redis_host,
        "MLOPS_REDIS_PORT": str(cfg.redis_port),
        "MLOPS_FEAST_REDIS_DB": str(cfg.feast_db),
        "MLOPS_FEAST_REGISTRY_URI": pg_url(cfg, sec, "feast", "postgresql+psycopg2"),
        "MLOPS_SMTP_HOST": LOOPBACK,
        "MLOPS_SMTP_PORT": str(cfg.smtp_port),
        "MLOPS_SMTP_DISABLE_TLS": "true",  # the stack's SMTP sink on loopback speaks plain SMTP (production: STARTTLS)
        "MLOPS_SOURCE_PG_HOST": cfg.pg_host,
        "MLOPS_SOURCE_PG_PORT": str(cfg.pg_port),
        "MLOPS_SOURCE_PG_DB": cfg.db("source"),
        "MLOPS_SOURCE_PG_USER": cfg.db("source"),
        "MLOPS_SOURCE_PG_PASSWORD": sec["pg_source_password"],
        # The connection mlops_state_default: per-model locks, alert sent markers and claims.
        "MLOPS_STATE_PG_HOST": cfg.pg_host,
        "MLOPS_STATE_PG_PORT": str(cfg.pg_port),
        "MLOPS_STATE_PG_DB": cfg.db("state"),
        "MLOPS_STATE_PG_USER": cfg.db("state"),
        "MLOPS_STATE_PG_PASSWORD": sec["pg_state_password"],
    }


def airflow_env(cfg: Config, sec: dict[str, str]) -> dict[str, str]:
    """The environment of every Airflow process: the whole Airflow configuration of the stack."""
    db = pg_url(cfg, sec, "airflow", "postgresql+psycopg2")
    return {
        "AIRFLOW_HOME": str(cfg.airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__FERNET_KEY": sec["fernet_key"],
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{cfg.api_url}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{sec['admin_user']}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(cfg.airflow_home / "passwords.json"),
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "stack_hostname.hostname",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db,
        "AIRFLOW__CELERY__BROKER_URL": f"redis://{cfg.redis_host}:{cfg.redis_port}/{cfg.broker_db}",
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + pg_url(cfg, sec, "airflow", "postgresql+psycopg2"),
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": os.environ.get("MLOPS_STACK_WORKER_CONCURRENCY") or "2",
        "AIRFLOW__API__HOST": LOOPBACK,
        "AIRFLOW__API__PORT": str(cfg.api_port),
        "AIRFLOW__API__BASE_URL": cfg.api_url,
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__SECRET_KEY": sec["api_secret_key"],
        "AIRFLOW__API_AUTH__JWT_SECRET": sec["jwt_secret"],
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(cfg.log_port),
        # A worker that dies mid-task is noticed within a minute (default 5), so its task is retried sooner.
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": os.environ.get(
            "MLOPS_STACK_HEARTBEAT_TIMEOUT") or "60",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
        # A worker slot frees within ~1 s of its task's end instead of up to 5 s: the task supervisor waits in
        # select() for at most this interval, and when the task process closes its sockets just before its
        # exit is visible, it notices the exit only at the end of that wait (Airflow 3.3.2; measured on
        # bench/stack_scale: 5 of 28 tasks of the two-worker chain lost 5.0 s each). The price: a heartbeat
        # request per running task per second to the API server instead of per 5 s.
        "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": os.environ.get("MLOPS_STACK_MIN_HEARTBEAT_INTERVAL") or "1",
        # Airflow's default: an idle scheduler loop sleeps 1 s, so each hand-over between tasks waits ~0.4 s for
        # it. 0.2 s cut the time with no task running from 10.7-13.5 to 4.1 s on a 400k-row chain, but doubled
        # the scheduler's and PostgreSQL's cores (0.05 -> 0.10-0.14 each), which the workers lose on a host the
        # services share (bench/stack_scale; docs/performance.md). Lower it where the services have cores of their own.
        "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": os.environ.get("MLOPS_STACK_SCHEDULER_IDLE_SLEEP") or "1",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "60",
        # Re-parse each DAG file every 2 min instead of 30 s: DAG files change on deploy, and parsing the six
        # files (3.1 s of CPU) every 30 s kept the dag-processor at 0.07 cores of this 2-core host (bench/stack_scale).
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": os.environ.get("MLOPS_STACK_PARSE_INTERVAL") or "120",
        "FEAST_USAGE": "False",
        "GX_ANALYTICS_ENABLED": "False",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "MLOPS_MLFLOW_UI_URL": cfg.mlflow_url,
    }


def base_env(cfg: Config) -> dict[str, str]:
    """The caller's environment minus anything that would point a stack process somewhere else."""
    drop = ("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_", "MLFLOW_", "AWS_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)
           and k not in {"AIRFLOW_HOME", "MLOPS_LAKE_URI", "MLOPS_REPORTS_URI", "MLOPS_MLFLOW_ARTIFACT_ROOT"}}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "scripts")])
    env["MLOPS_REPO_ROOT"] = str(REPO)
    env["MLOPS_HOME"] = str(cfg.home)
    env["PYTHONUNBUFFERED"] = "1"
    return env


# -- processes -------------------------------------------------------------------------------------
@dataclass
class Component:
    name: str
    argv: list[str]
    env: dict[str, str]
    port: int | None = None
    health: str | None = None  # URL answering 200 once ready
    ready_line: str | None = None  # text in the log once ready


#: MLflow 3's server starts a job runner (seven huey consumers polling their queues) for its GenAI jobs
#: (LLM judges, trace rollups), which the platform does not use: 0.014-0.018 cores of this 2-core host
#: while idle, taken from the workers (bench/stack_scale). Off; the tracking server and registry are unchanged.
MLFLOW_SERVER_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def components(cfg: Config, sec: dict[str, str]) -> list[Component]:
    py = sys.executable
    base = base_env(cfg)
    svc = service_env(cfg, sec)
    aws = {"AWS_ACCESS_KEY_ID": sec["s3_access_key"], "AWS_SECRET_ACCESS_KEY": sec["s3_secret_key"],
           "AWS_DEFAULT_REGION": "us-east-1", **S3_COMPAT}
    airflow = {**base, **svc, **airflow_env(cfg, sec)}
    af = str(VENV_BIN / "airflow")
    result = [
        Component("s3", s3_server_argv(cfg), base, port=cfg.s3_port),
        Component("smtp", [py, str(REPO / "scripts" / "stack_smtp.py"), "--host", LOOPBACK, "--port",
                           str(cfg.smtp_port), "--maildir", str(cfg.maildir)], base, port=cfg.smtp_port),
        Component("mlflow", [str(VENV_BIN / "mlflow"), "server", "--host", LOOPBACK, "--port", str(cfg.mlflow_port),
                             "--workers", "1", "--backend-store-uri", pg_url(cfg, sec, "mlflow"),
                             "--artifacts-destination", f"s3://{cfg.bucket}/mlflow"],
                  {**base, **aws, "MLFLOW_S3_ENDPOINT_URL": cfg.s3_url, **MLFLOW_SERVER_ENV},
                  port=cfg.mlflow_port,
                  health=f"{cfg.mlflow_url}/health"),
        Component("api-server", [af, "api-server"], airflow, port=cfg.api_port,
                  health=f"{cfg.api_url}/api/v2/monitor/health"),
        Component("scheduler", [af, "scheduler"], airflow),
        Component("dag-processor", [af, "dag-processor"], airflow),
        Component("triggerer", [af, "triggerer", "--skip-serve-logs"], airflow),
    ]
    for n in range(1, cfg.workers + 1):
        name = f"worker{n}"
        # A private MLOPS_HOME, as a worker on its own host has: nothing on disk is shared between workers.
        env = {**airflow, "MLOPS_STACK_HOSTNAME": name, "MLOPS_HOME": str(cfg.worker_home(name)),
               "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": "stack_celery.CELERY_CONFIG"}
        result.append(Component(f"{name}-logs", [py, str(REPO / "scripts" / "stack_logserver.py"), "--host",
                                                  LOOPBACK, "--port", str(cfg.worker_log_port(n))],
                                env, port=cfg.worker_log_port(n)))
        result.append(Component(name, [af, "celery", "worker", "--celery-hostname", f"{name}@%h",
                                       "--skip-serve-logs", "--queues", "default", "--without-gossip"],
                                env, ready_line=f"{name}@"))
    return result


def pid_file(cfg: Config, name: str) -> Path:
    return cfg.dir / "pids" / f"{name}.pid"


def log_file(cfg: Config, name: str) -> Path:
    return cfg.dir / "logs" / f"{name}.log"


def read_pid(cfg: Config, name: str) -> int | None:
    path = pid_file(cfg, name)
    try:
        pid = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if _alive(pid) else None


def _alive(pid: int) -> bool:
    import psutil

    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def log_tail(cfg: Config, name: str, lines: int = 40) -> str:
    try:
        text = log_file(cfg, name).read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])


class StackError(RuntimeError):
    pass


def start(cfg: Config, comp: Component) -> int:
    if pid := read_pid(cfg, comp.name):
        print(f"  {comp.name:<14} already running (pid {pid})")
        return pid
    if comp.port and port_open(comp.port):
        raise StackError(f"{comp.name}: port {LOOPBACK}:{comp.port} is already in use by another process; "
                         f"choose another port (see scripts/stack.py --help)")
    log = log_file(cfg, comp.name)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} start: {shlex.join(comp.argv)}\n".encode())
        out.flush()
        # A new session per component: ``down`` signals the whole process group, children included.
        proc = subprocess.Popen(comp.argv, env=comp.env, cwd=cfg.dir, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    pid_file(cfg, comp.name).parent.mkdir(parents=True, exist_ok=True)
    pid_file(cfg, comp.name).write_text(f"{proc.pid}\n")
    print(f"  {comp.name:<14} started (pid {proc.pid}, log {log})")
    return proc.pid


def port_open(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def wait_ready(cfg: Config, comp: Component, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    began = time.monotonic()
    while True:
        if not read_pid(cfg, comp.name):
            raise StackError(f"{comp.name} exited during start-up; last lines of {log_file(cfg, comp.name)}:\n"
                             f"{log_tail(cfg, comp.name)}")
        if comp.health:
            ready = http_ok(comp.health)
        elif comp.port:
            ready = port_open(comp.port)
        elif comp.ready_line:
            ready = "ready." in log_file(cfg, comp.name).read_text(errors="replace").split("=== ")[-1]
        else:
            ready = True
        if ready:
            print(f"  {comp.name:<14} ready after {time.monotonic() - began:.1f}s")
            return
        if time.monotonic() > deadline:
            raise StackError(f"{comp.name} not ready after {timeout:.0f}s; last lines of "
                             f"{log_file(cfg, comp.name)}:\n{log_tail(cfg, comp.name)}")
        time.sleep(0.5)


def run_step(cfg: Config, name: str, argv: list[str], env: dict[str, str], timeout: float) -> None:
    """A foreground step (migration, settings load) with its output in ``logs/<name>.log``."""
    began = time.monotonic()
    log = log_file(cfg, name)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} run: {shlex.join(argv)}\n".encode())
        out.flush()
        try:
            rc = subprocess.run(argv, env=env, cwd=cfg.dir, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, timeout=timeout).returncode
        except subprocess.TimeoutExpired as exc:
            raise StackError(f"{name} did not finish within {timeout:.0f}s; see {log}") from exc
    if rc != 0:
        raise StackError(f"{name} failed (exit {rc}); last lines of {log}:\n{log_tail(cfg, name)}")
    print(f"  {name:<14} done in {time.monotonic() - began:.1f}s")


# -- PostgreSQL, Redis, S3 ---------------------------------------------------------------------------
def prepare_postgres(cfg: Config, sec: dict[str, str], fresh: bool) -> None:
    """Roles and databases ``<prefix>_{airflow,mlflow,source,feast,state}`` (created once; passwords kept in sync)."""
    import psycopg2
    from psycopg2 import sql

    conn = psycopg2.connect(host=cfg.pg_host, port=cfg.pg_port, user=cfg.pg_admin, dbname="postgres",
                            password=os.environ.get("MLOPS_STACK_PG_ADMIN_PASSWORD") or None, connect_timeout=5)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for name in DATABASES:
                role = cfg.db(name)
                if fresh:
                    cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(role)))
                cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
                verb = "ALTER" if cur.fetchone() else "CREATE"
                cur.execute(sql.SQL(verb + " ROLE {} LOGIN PASSWORD %s").format(sql.Identifier(role)),
                            (sec[f"pg_{name}_password"],))
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (role,))
                if not cur.fetchone():
                    cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(role),
                                                                              sql.Identifier(role)))
    finally:
        conn.close()
    print(f"  postgres       databases {', '.join(cfg.db(n) for n in DATABASES)} "
          f"on {cfg.pg_host}:{cfg.pg_port}{' (recreated)' if fresh else ''}")


def prepare_redis(cfg: Config, fresh: bool) -> None:
    import redis

    for db in (cfg.broker_db, cfg.feast_db):
        client = redis.Redis(host=cfg.redis_host, port=cfg.redis_port, db=db, socket_timeout=5)
        client.ping()
        if fresh:
            client.flushdb()
    print(f"  redis          {cfg.redis_host}:{cfg.redis_port} db {cfg.broker_db} (Celery broker), "
          f"db {cfg.feast_db} (Feast online store){' (flushed)' if fresh else ''}")


def prepare_s3(cfg: Config, sec: dict[str, str]) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=cfg.s3_url, aws_access_key_id=sec["s3_access_key"],
                      aws_secret_access_key=sec["s3_secret_key"], region_name="us-east-1")
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if cfg.bucket not in existing:
        s3.create_bucket(Bucket=cfg.bucket)
    print(f"  s3             bucket s3://{cfg.bucket} (lake/, reports/, mlflow/, sources/)")


# -- commands --------------------------------------------------------------------------------------
def write_stack_env(cfg: Config, sec: dict[str, str]) -> Path:
    env = {**service_env(cfg, sec), **airflow_env(cfg, sec)}
    path = cfg.dir / "stack.env"
    lines = ["# Written by scripts/stack.py: `set -a; . $MLOPS_HOME/stack/stack.env; set +a` points the",
             "# airflow CLI and clients at the running stack. Contains secrets: keep it private."]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in sorted(env.items())]
    lines.append(f"export PYTHONPATH={shlex.quote(os.pathsep.join([str(REPO), str(REPO / 'scripts')]))}")
    _write_private(path, "\n".join(lines) + "\n")
    return path


def up(cfg: Config, fresh: bool, timeout: float) -> None:
    began = time.monotonic()
    if fresh:
        down(cfg, quiet=True)
        shutil.rmtree(cfg.dir / "workers", ignore_errors=True)  # the workers' private homes start empty too
        shutil.rmtree(cfg.dir / "s3", ignore_errors=True)  # and the bucket
    if not S3_SERVER.exists():
        raise StackError(f"the stack's S3 endpoint is not installed ({S3_SERVER} missing): run scripts/stack-deps.sh")
    (cfg.dir / "s3").mkdir(parents=True, exist_ok=True)
    sec = load_secrets(cfg)
    print(f"stack up: state in {cfg.dir}")
    prepare_postgres(cfg, sec, fresh)
    prepare_redis(cfg, fresh)
    comps = {c.name: c for c in components(cfg, sec)}
    airflow = comps["scheduler"].env
    _write_private(cfg.airflow_home / "passwords.json", json.dumps({sec["admin_user"]: sec["admin_password"]}))
    try:
        for name in ("s3", "smtp", "mlflow"):
            start(cfg, comps[name])
        for name in ("s3", "smtp"):
            wait_ready(cfg, comps[name], 60)
        prepare_s3(cfg, sec)
        run_step(cfg, "db-migrate", [str(VENV_BIN / "airflow"), "db", "migrate"], airflow, timeout)
        rest = [c for c in comps.values() if c.name not in ("s3", "smtp", "mlflow")]
        for comp in rest:
            start(cfg, comp)
        # Connections are read when tasks run, so they load while the components start.
        run_step(cfg, "settings", [sys.executable, "-m", "mlops_provider.settings_loader",
                                   str(REPO / "airflow_settings.yaml")], airflow, 300)
        for comp in [comps["mlflow"], *rest]:
            wait_ready(cfg, comp, max(60.0, timeout - (time.monotonic() - began)))
    except BaseException:
        print("stack up failed: stopping what was started", file=sys.stderr)
        down(cfg, quiet=True)
        raise
    env_path = write_stack_env(cfg, sec)
    print(f"stack up in {time.monotonic() - began:.0f}s\n"
          f"  Airflow UI/API  {cfg.api_url}  (user {sec['admin_user']}, password in {cfg.dir / 'secrets.json'})\n"
          f"  MLflow          {cfg.mlflow_url}\n  S3 endpoint     {cfg.s3_url}  bucket {cfg.bucket}\n"
          f"  SMTP            {LOOPBACK}:{cfg.smtp_port}  -> {cfg.maildir}\n"
          f"  CLI             set -a; . {env_path}; set +a; airflow dags list")


def _process_tree(pid: int) -> list:
    import psutil

    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def down(cfg: Config, quiet: bool = False, grace: float = 20.0) -> bool:
    """Stop every process the stack started (whole trees); ``True`` when nothing is left running."""
    import psutil

    pid_dir = cfg.dir / "pids"
    names = sorted(p.stem for p in pid_dir.glob("*.pid")) if pid_dir.exists() else []
    procs = []
    for name in names:
        pid = read_pid(cfg, name)
        if pid is None:
            pid_file(cfg, name).unlink(missing_ok=True)
            continue
        tree = _process_tree(pid)
        procs += tree
        # Warm shutdown first: Celery finishes nothing new, Airflow components deregister.
        for proc in tree:
            with _suppress():
                proc.send_signal(signal.SIGTERM)
        if not quiet:
            print(f"  {name:<14} stopping (pid {pid}, {len(tree)} process(es))")
    _gone, alive = psutil.wait_procs(procs, timeout=grace)
    for proc in alive:
        with _suppress():
            proc.kill()
    _gone, alive = psutil.wait_procs(alive, timeout=10)
    for name in names:
        pid_file(cfg, name).unlink(missing_ok=True)
    busy = [p for p in busy_ports(cfg)]
    if not quiet:
        print(f"stack down: {len(procs)} process(es) stopped"
              + (f", {len(alive)} would not die: {[p.pid for p in alive]}" if alive else "")
              + (f"; ports still in use: {busy}" if busy else "; all stack ports free"))
    return not alive and not busy


class _suppress:
    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        import psutil

        return exc_type is not None and issubclass(exc_type, psutil.Error)


def busy_ports(cfg: Config) -> list[int]:
    ports = [cfg.api_port, cfg.s3_port, cfg.mlflow_port, cfg.smtp_port,
             *(cfg.worker_log_port(n) for n in range(1, cfg.workers + 1))]
    return [p for p in ports if port_open(p)]


def status(cfg: Config) -> bool:
    sec_path = cfg.dir / "secrets.json"
    if not sec_path.exists():
        print(f"no stack state in {cfg.dir}")
        return False
    sec = load_secrets(cfg)
    healthy = True
    for comp in components(cfg, sec):
        pid = read_pid(cfg, comp.name)
        if pid is None:
            state = "stopped"
            healthy = False
        elif comp.health:
            state = "healthy" if http_ok(comp.health) else "running, not answering"
            healthy &= state == "healthy"
        elif comp.port:
            state = "listening" if port_open(comp.port) else "running, port closed"
            healthy &= state == "listening"
        else:
            state = "running"
        where = f"{LOOPBACK}:{comp.port}" if comp.port else ""
        print(f"  {comp.name:<14} {state:<24} {f'pid {pid}' if pid else '':<12} {where}")
    if http_ok(f"{cfg.api_url}/api/v2/monitor/health"):
        with urllib.request.urlopen(f"{cfg.api_url}/api/v2/monitor/health", timeout=3) as response:
            health = json.load(response)
        print("  airflow health: " + ", ".join(f"{k}={(v or {}).get('status')}" for k, v in health.items()))
    return healthy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="Configuration: see the module docstring (environment variables).")
    parser.add_argument("command", choices=["up", "down", "status", "env"])
    parser.add_argument("--fresh", action="store_true", help="up: drop the stack's databases and Redis dbs first")
    parser.add_argument("--timeout", type=float, default=float(os.environ.get("MLOPS_STACK_TIMEOUT") or 300),
                        help="up: seconds to wait for everything to be ready")
    args = parser.parse_args(argv)
    cfg = Config()
    try:
        if args.command == "up":
            up(cfg, args.fresh, args.timeout)
            return 0
        if args.command == "down":
            return 0 if down(cfg) else 1
        if args.command == "env":
            print(write_stack_env(cfg, load_secrets(cfg)).read_text(), end="")
            return 0
        return 0 if status(cfg) else 3
    except StackError as exc:
        print(f"stack {args.command} failed: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
