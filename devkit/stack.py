"""A ``scripts/stack.py`` production stack of one's own, for the stack tests and ``bench/alert.py``.

``stack_env`` is the environment of a stack that never collides with a developer's ``make stack-up``;
``Stack`` is a handle on the running stack (its URLs, logs, S3, Redis, MLflow, received mail);
``write_projects`` gives it the bundled projects with production sources, ``append_fraud_days``
writes generated fraud days into its PostgreSQL source, and ``copy_fraud_day`` lands one large day there
with ``COPY``, generated in chunks (bounded memory).
"""

from __future__ import annotations

import datetime as dt
import shlex
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
STACK = [sys.executable, str(REPO / "scripts" / "stack.py")]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def reachable(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


def services_missing() -> str | None:
    """What a stack needs and does not find: the PostgreSQL and Redis of ``devkit.services``, or None."""
    from devkit import services

    wanted = {"PostgreSQL": (services.pg_host(), services.pg_port()),
              "Redis": (services.redis_host(), services.redis_port())}
    missing = [f"{name} on {host}:{port}" for name, (host, port) in wanted.items() if not reachable(port, host)]
    return f"the stack needs {' and '.join(missing)}" if missing else None


def wait_for(what: str, probe, timeout: float, describe=None, interval: float = 3):
    """``probe()``'s first truthy result, polled every ``interval`` s; AssertionError after ``timeout``."""
    import time

    deadline = time.monotonic() + timeout
    while not (found := probe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not there after {timeout:.0f}s" + (f"\n{describe()}" if describe else ""))
        time.sleep(interval)
    return found


def stack_env(home: Path, projects: Path, *, db_prefix: str, broker_db: str, feast_db: str) -> dict[str, str]:
    """Environment of a ``scripts/stack.py`` stack of its own: MLOPS_HOME, free loopback ports, databases
    ``<db_prefix>_*`` and Redis db indexes, so it never collides with a developer's ``make stack-up``."""
    import os

    env = {**os.environ, "MLOPS_HOME": str(home), "MLOPS_PROJECTS_DIR": str(projects),
           "MLOPS_STACK_DB_PREFIX": db_prefix, "MLOPS_STACK_BUCKET": "mlops",
           "MLOPS_STACK_REDIS_BROKER_DB": broker_db, "MLOPS_STACK_REDIS_FEAST_DB": feast_db}
    for name in ("API", "S3", "MLFLOW", "SMTP"):
        env[f"MLOPS_STACK_{name}_PORT"] = str(free_port())
    log_port = free_port()  # worker n serves its logs on log_port + 2(n-1)
    while reachable(log_port + 2) or log_port + 2 > 65535:
        log_port = free_port()
    env["MLOPS_STACK_LOG_PORT"] = str(log_port)
    return env


@dataclass
class Stack:
    env: dict[str, str]  # stack.env: URLs, credentials, Airflow configuration
    home: Path
    projects: Path

    @property
    def dir(self) -> Path:
        return Path(self.env["MLOPS_STACK_DIR"])

    @property
    def api_url(self) -> str:
        return self.env["MLOPS_STACK_API_URL"]

    def pid(self, component: str) -> int | None:
        try:
            return int((self.dir / "pids" / f"{component}.pid").read_text().split()[0])
        except (OSError, ValueError):
            return None

    def log_tail(self, component: str, lines: int = 30) -> str:
        try:
            text = (self.dir / "logs" / f"{component}.log").read_text(errors="replace").splitlines()
        except OSError:
            return f"(no log for {component})"
        return f"--- {component} (last {lines} lines) ---\n" + "\n".join(text[-lines:])

    def logs(self, *components: str) -> str:
        return "\n".join(self.log_tail(c) for c in components or
                         ("scheduler", "worker1", "worker2", "dag-processor", "api-server"))

    def s3(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.env["MLOPS_S3_ENDPOINT_URL"], region_name="us-east-1",
                            aws_access_key_id=self.env["MLOPS_S3_ACCESS_KEY_ID"],
                            aws_secret_access_key=self.env["MLOPS_S3_SECRET_ACCESS_KEY"])

    @property
    def bucket(self) -> str:
        return self.env["MLOPS_S3_BUCKET"]

    def redis(self):
        import redis

        return redis.Redis(host=self.env["MLOPS_REDIS_HOST"], port=int(self.env["MLOPS_REDIS_PORT"]),
                           db=int(self.env["MLOPS_FEAST_REDIS_DB"]))

    def worker_home(self, worker: str) -> Path:
        """The private ``MLOPS_HOME`` of Celery worker ``worker`` (scripts/stack.py gives each its own)."""
        return self.dir / "workers" / worker

    def state_rows(self, sql: str, args: tuple = ()) -> list[tuple]:
        """Rows of ``sql`` in the stack's coordination database (connection ``mlops_state_default``)."""
        from devkit import services

        e = self.env
        return services.pg_rows(sql, args, host=e["MLOPS_STATE_PG_HOST"], port=e["MLOPS_STATE_PG_PORT"],
                                dbname=e["MLOPS_STATE_PG_DB"], user=e["MLOPS_STATE_PG_USER"],
                                password=e["MLOPS_STATE_PG_PASSWORD"])

    def source_dsn(self) -> str:
        e = self.env
        return (f"host={e['MLOPS_SOURCE_PG_HOST']} port={e['MLOPS_SOURCE_PG_PORT']} dbname={e['MLOPS_SOURCE_PG_DB']} "
                f"user={e['MLOPS_SOURCE_PG_USER']} password={e['MLOPS_SOURCE_PG_PASSWORD']}")

    def mlflow(self):
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.env["MLOPS_MLFLOW_URL"], registry_uri=self.env["MLOPS_MLFLOW_URL"])

    def mails(self) -> list:
        import email
        from email import policy

        maildir = Path(self.env["MLOPS_STACK_MAILDIR"])
        return [email.message_from_bytes(p.read_bytes(), policy=policy.default)
                for p in sorted(maildir.glob("*.eml"))]


def read_env(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export "):].partition("=")
            env[key] = shlex.split(value)[0] if value else ""
    return env


def write_projects(directory: Path, overrides: dict[str, dict] | None = None) -> None:
    """fraud from PostgreSQL, churn from S3: the bundled configs with only ``source`` changed.

    ``overrides`` (``{project: {key: value}}``) changes more: a mapping value updates the key's mapping
    (``{"fraud": {"runs": {"shard_rows": 50_000}}}``), any other value replaces it."""
    directory.mkdir(parents=True, exist_ok=True)
    sources = {
        "fraud": {"kind": "postgres", "conn_id": "mlops_source_postgres", "table": "fraud_transactions",
                  "labels_table": "fraud_labels"},
        "churn": {"kind": "s3", "conn_id": "aws_default", "bucket": "mlops", "prefix": "sources/churn"},
    }
    for name, source in sources.items():
        raw = yaml.safe_load((REPO / "include" / "projects" / f"{name}.yaml").read_text())
        raw["source"] = source
        for key, value in ((overrides or {}).get(name) or {}).items():
            raw[key] = {**(raw.get(key) or {}), **value} if isinstance(value, dict) else value
        (directory / f"{name}.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


# -- source data ------------------------------------------------------------------------------------
def project(stack: Stack, name: str):
    from mlops_provider.config.project import load_project_file

    return load_project_file(stack.projects / f"{name}.yaml")


def day_frames(project, day: dt.date, rows: int, scenario: str = "clean", seed_day: dt.date | None = None):
    """(records without label, labels arriving ``label.delay_days`` later) of ``day``, as the landing generator makes them.

    The generators seed a day's rows from its date. ``seed_day`` makes the rows of that date instead, moved
    onto ``day`` (timestamps shifted, the date in each record id replaced): tests whose days follow the
    calendar get the same data every day they run."""
    import pandas as pd

    from devkit.datagen.landing import generate_day

    seed_day = seed_day or day
    full = generate_day(project, seed_day, rows, scenario)
    if seed_day != day:
        full[project.event_timestamp] = full[project.event_timestamp] + (day - seed_day)
        full[project.record_id] = full[project.record_id].str.replace(f"{seed_day:%Y%m%d}", f"{day:%Y%m%d}", n=1)
    records = full.drop(columns=[project.label_column])
    labels = pd.DataFrame({
        project.record_id: full[project.record_id],
        project.label_column: full[project.label_column],
        "label_timestamp": pd.Timestamp(day + dt.timedelta(days=project.label_delay_days)) + pd.Timedelta(hours=6),
    })
    return records, labels


def source_engine(stack: Stack):
    import sqlalchemy

    e = stack.env
    return sqlalchemy.create_engine(
        f"postgresql+psycopg2://{e['MLOPS_SOURCE_PG_USER']}:{e['MLOPS_SOURCE_PG_PASSWORD']}@"
        f"{e['MLOPS_SOURCE_PG_HOST']}:{e['MLOPS_SOURCE_PG_PORT']}/{e['MLOPS_SOURCE_PG_DB']}")


def append_fraud_days(stack: Stack, days: dict[dt.date, str], rows: int,
                      seed_day: Callable[[dt.date], dt.date] | None = None) -> None:
    """Append ``rows`` records per day (``{day: scenario}``) and their labels to the fraud source tables.

    ``seed_day(day)``: the date whose rows each day gets (:func:`day_frames`); default the day's own."""
    import pandas as pd

    fraud = project(stack, "fraud")
    records, labels = zip(*(day_frames(fraud, day, rows, scenario, seed_day(day) if seed_day else None)
                            for day, scenario in days.items()), strict=True)
    engine = source_engine(stack)
    with engine.begin() as conn:
        pd.concat(records).to_sql("fraud_transactions", conn, index=False, if_exists="append", chunksize=5000)
        pd.concat(labels).to_sql("fraud_labels", conn, index=False, if_exists="append", chunksize=5000)
    engine.dispose()


def fraud_day_chunks(project, day: dt.date, rows: int, chunk_rows: int = 500_000, scenario: str = "clean"):
    """``(records, labels)`` of ``day`` in chunks of at most ``chunk_rows`` rows, ``rows`` in all.

    The generator makes one day from a seed derived from the day; chunk ``k > 0`` is generated for a day
    100 years earlier (another seed, the same distributions) and moved onto ``day``, its record ids numbered
    after the previous chunks', so the chunks together are one day of distinct records."""
    done = 0
    for k in range(-(-rows // chunk_rows)):
        n = min(chunk_rows, rows - done)
        records, labels = day_frames(project, day, n, scenario, None if k == 0 else day - dt.timedelta(days=36_500 + k))
        if k:
            ids = [f"T{day:%Y%m%d}-{done + i:07d}" for i in range(n)]  # the generator's own form
            records[project.record_id] = ids
            labels[project.record_id] = ids
        done += n
        yield records, labels


def _copy_frame(cur, table: str, frame) -> None:
    import io

    from psycopg2 import sql

    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, header=False, date_format="%Y-%m-%d %H:%M:%S.%f")
    buffer.seek(0)
    statement = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv)").format(
        sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(c) for c in frame.columns))
    cur.copy_expert(statement.as_string(cur), buffer)


def copy_fraud_day(stack: Stack, day: dt.date, rows: int, *, scenario: str = "clean",
                   chunk_rows: int = 500_000) -> dict[str, float]:
    """Land ``rows`` records of ``day`` (and their labels) in the fraud source tables with ``COPY``.

    Generated and copied chunk by chunk (:func:`fraud_day_chunks`), so memory stays that of one chunk
    whatever ``rows`` is. The tables must exist (a first :func:`append_fraud_days` creates them); the
    timestamp columns get the index a production table would have, and the tables are analyzed.
    Returns the rows and the seconds taken."""
    import time

    import psycopg2

    began = time.monotonic()
    fraud = project(stack, "fraud")
    conn = psycopg2.connect(stack.source_dsn())
    try:
        with conn, conn.cursor() as cur:
            for records, labels in fraud_day_chunks(fraud, day, rows, chunk_rows, scenario):
                _copy_frame(cur, "fraud_transactions", records)
                _copy_frame(cur, "fraud_labels", labels)
        conn.autocommit = True
        with conn.cursor() as cur:
            for table, column in (("fraud_transactions", fraud.event_timestamp), ("fraud_labels", "label_timestamp")):
                cur.execute(f'CREATE INDEX IF NOT EXISTS "{table}_{column}_idx" ON "{table}" ("{column}")')
                cur.execute(f'ANALYZE "{table}"')
    finally:
        conn.close()
    return {"rows": rows, "seconds": round(time.monotonic() - began, 1)}
