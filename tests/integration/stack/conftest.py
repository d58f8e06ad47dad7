"""The production stack for the tests: ``scripts/stack.py up --fresh`` once per session, ``down`` at the end.

The stack gets its own MLOPS_HOME, free loopback ports, databases ``mlopstest_*`` and Redis db indexes
10/11 (assigned in ``devkit/services.py``), so it never collides with a developer's ``make stack-up`` (a
second concurrent test session sets ``MLOPS_STACK_TEST_DB_PREFIX`` and ``MLOPS_STACK_TEST_REDIS_BROKER_DB``
/ ``..._FEAST_DB`` to indexes no one else owns). Its projects directory holds the two
bundled projects with production sources: ``fraud`` reads a PostgreSQL table, ``churn`` an S3 prefix.
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from devkit import services
from devkit.stack import STACK, Stack, read_env, services_missing, stack_env, write_projects
from tests.integration.stack.support import UP_TIMEOUT, seed_sources


@pytest.fixture(scope="session")
def stack(tmp_path_factory) -> Stack:
    if missing := services_missing():
        pytest.skip(f"{missing} (start them; .ci/run starts the machine's PostgreSQL and Redis)")
    base = tmp_path_factory.mktemp("stack")
    home, projects = base / "home", base / "projects"
    # Two test sessions on one machine (a CI checkout next to a developer's) need their own databases and
    # Redis db indexes: `up --fresh` drops them, whoever else uses them.
    env = stack_env(home, projects, db_prefix=os.environ.get("MLOPS_STACK_TEST_DB_PREFIX") or "mlopstest",
                    broker_db=str(services.redis_db("test stack broker")),
                    feast_db=str(services.redis_db("test stack feast")))
    env["MLOPS_STACK_HEARTBEAT_TIMEOUT"] = "30"
    write_projects(projects)

    def down() -> subprocess.CompletedProcess:
        return subprocess.run([*STACK, "down"], env=env, capture_output=True, text=True, timeout=120)

    began = time.monotonic()
    try:
        up = subprocess.run([*STACK, "up", "--fresh", "--timeout", str(UP_TIMEOUT)], env=env, capture_output=True,
                            text=True, timeout=UP_TIMEOUT + 120)
    except subprocess.TimeoutExpired as exc:
        down()
        pytest.fail(f"stack up did not return within {UP_TIMEOUT + 120}s: {exc.stdout}\n{exc.stderr}")
    if up.returncode != 0:
        down()
        pytest.fail(f"stack up failed (exit {up.returncode}):\n{up.stdout}\n{up.stderr}")
    print(f"\nstack up in {time.monotonic() - began:.0f}s")
    info = Stack(env=read_env(home / "stack" / "stack.env"), home=home, projects=projects)
    try:
        seed_sources(info)
        yield info
    finally:
        result = down()
        assert result.returncode == 0, f"stack down left something running:\n{result.stdout}\n{result.stderr}"
        for pid_file in (home / "stack" / "pids").glob("*.pid"):
            raise AssertionError(f"pid file left behind: {pid_file}")


@pytest.fixture(scope="session")
def api(stack):
    from devkit.airflow_api import AirflowApi

    return AirflowApi(stack.api_url, stack.env["MLOPS_STACK_ADMIN_USER"], stack.env["MLOPS_STACK_ADMIN_PASSWORD"])
