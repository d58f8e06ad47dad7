"""Where the local PostgreSQL and Redis are, and which Redis db index each of their users owns.

The integration tests, the stack tests, the benchmarks and a developer's ``make stack-up`` share one
PostgreSQL and one Redis. Each user of Redis flushes its own db index (``scripts/stack.py up --fresh``
flushes the stack's, the Feast tests and benchmarks flush theirs), so two users on one index would wipe
each other's data: the indexes are assigned here, once, and ``redis_db`` refuses a configuration (after
environment overrides) in which two users share one. Host and port come from the variables
``scripts/stack.py`` reads (``MLOPS_STACK_PG_HOST`` / ``_PORT`` / ``_ADMIN``, ``MLOPS_STACK_REDIS_HOST`` /
``_PORT``), so the tests look for the services where the stack they start will.
"""

from __future__ import annotations

import os

LOOPBACK = "127.0.0.1"

# user -> (environment variable that overrides it, default db index). Redis has 16 (0-15) by default.
REDIS_DBS: dict[str, tuple[str, int]] = {
    # a developer's `make stack-up` (the defaults of scripts/stack.py, which reads the same variables)
    "stack broker": ("MLOPS_STACK_REDIS_BROKER_DB", 8),
    "stack feast": ("MLOPS_STACK_REDIS_FEAST_DB", 9),
    # the stack the stack tests bring up (tests/integration/stack/conftest.py)
    "test stack broker": ("MLOPS_STACK_TEST_REDIS_BROKER_DB", 10),
    "test stack feast": ("MLOPS_STACK_TEST_REDIS_FEAST_DB", 11),
    # bench/feature_store.py: FeastHook.materialize into Redis
    "bench feast": ("MLOPS_BENCH_REDIS_FEAST_DB", 12),
    # the stack bench/alert.py brings up
    "bench stack broker": ("MLOPS_BENCH_STACK_REDIS_BROKER_DB", 13),
    "bench stack feast": ("MLOPS_BENCH_STACK_REDIS_FEAST_DB", 14),
    # the stacks bench/stack_scale.py brings up (one after the other: one worker, then two)
    "bench scale stack broker": ("MLOPS_BENCH_SCALE_STACK_REDIS_BROKER_DB", 5),
    "bench scale stack feast": ("MLOPS_BENCH_SCALE_STACK_REDIS_FEAST_DB", 6),
    # tests/integration/test_feast_redis.py
    "test feast": ("MLOPS_TEST_REDIS_FEAST_DB", 15),
    # tests/faults/test_features.py: a Redis cut mid-materialisation
    "test faults feast": ("MLOPS_TEST_FAULTS_REDIS_FEAST_DB", 7),
}


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


def pg_host() -> str:
    return os.environ.get("MLOPS_STACK_PG_HOST") or LOOPBACK


def pg_port() -> int:
    return _env_int("MLOPS_STACK_PG_PORT", 5432)


def pg_admin() -> str:
    """A role allowed to create databases (and roles), as ``scripts/stack.py`` uses it."""
    return os.environ.get("MLOPS_STACK_PG_ADMIN") or "postgres"


def pg_rows(sql: str, args: tuple = (), *, dbname: str, host: str | None = None, port: int | str | None = None,
            user: str | None = None, password: str | None = None, connect_timeout: int = 10) -> list[tuple]:
    """Rows of ``sql`` (with ``args``) in database ``dbname``, on a connection of its own, closed after.

    Host, port and user default to this PostgreSQL's (``pg_host``, ``pg_port``, ``pg_admin``)."""
    import psycopg2

    conn = psycopg2.connect(host=host or pg_host(), port=port or pg_port(), user=user or pg_admin(),
                            password=password, dbname=dbname, connect_timeout=connect_timeout)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()
    finally:
        conn.close()


def redis_host() -> str:
    return os.environ.get("MLOPS_STACK_REDIS_HOST") or LOOPBACK


def redis_port() -> int:
    return _env_int("MLOPS_STACK_REDIS_PORT", 6379)


def redis_dbs() -> dict[str, int]:
    """Every user's db index after environment overrides; ValueError if two users share one."""
    dbs = {user: _env_int(var, default) for user, (var, default) in REDIS_DBS.items()}
    owners: dict[int, str] = {}
    for user, db in dbs.items():
        if db in owners:
            raise ValueError(f"Redis db {db} is assigned to both {owners[db]!r} ({REDIS_DBS[owners[db]][0]}) and "
                             f"{user!r} ({REDIS_DBS[user][0]}): give each its own index (devkit/services.py)")
        owners[db] = user
    return dbs


def redis_db(user: str) -> int:
    """The Redis db index of ``user`` (a key of ``REDIS_DBS``), distinct from every other user's."""
    return redis_dbs()[user]
