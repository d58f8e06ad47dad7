"""Features under faults: a worker killed mid lake write of the feature tables or mid materialisation, and the
Feast online store (a real Redis, reached through a TCP proxy the test cuts) gone mid materialisation."""

from __future__ import annotations

import pytest

from devkit import services
from tests.faults.conftest import DAYS, TcpProxy
from tests.faults.support import Case

pytestmark = pytest.mark.faults

DAY = DAYS[-1]


def feature_tables() -> list[str]:
    from mlops_provider.config.project import load_project
    from mlops_provider.domain.layout import entity_table, record_table

    project = load_project("fraud")
    return [*(entity_table(project, e.name) for e in project.feature_spec.entities), record_table(project)]


def test_kill_mid_feature_write(world, home):
    """SIGKILL after the first feature table of the day is rewritten, before the second; the rerun rewrites all, same rows."""
    import pandas as pd
    from mlops_provider.io.lake import Lake

    case = Case("SIGKILL mid lake write", "features.compute_features")
    before = {t: Lake().read(t, DAY) for t in feature_tables()}
    killed = home.run("features", {"day": DAY.isoformat()}, failpoints="lake.write.publish=kill@2")
    assert killed.killed, killed.output
    retry = home.run("features", {"day": DAY.isoformat()})
    assert retry.returncode == 0, retry.output
    lake = Lake()
    for table, expected in before.items():
        case.check(f"{table} partition listed once", lake.partitions(table).count(DAY) == 1, lake.partitions(table))
        visible = lake.list_files(f"{table}/dt={DAY.isoformat()}")
        case.check(f"{table}: one visible file", len(visible) == 1, visible)
        # created_timestamp is the wall clock of the write; everything else must be the same.
        after, expected = (f.drop(columns=["created_timestamp"], errors="ignore") for f in (lake.read(table, DAY), expected))
        same = after.shape == expected.shape and after.reset_index(drop=True).equals(expected.reset_index(drop=True))
        if not same:
            try:
                pd.testing.assert_frame_equal(after, expected, check_like=True)
                same = True
            except AssertionError as exc:
                same = exc
        case.check(f"{table}: same rows as an uninterrupted run (none lost or duplicated)", same is True, same)
    case.verify()


def check_online(case: Case, result) -> None:
    fresh = (result or {}).get("freshness") or {}
    case.check("online store == offline partition after the rerun (freshness, every key)",
               fresh.get("mismatches") == 0 and fresh.get("checked", 0) > 0, fresh)


def test_kill_mid_materialisation(world, home):
    """SIGKILL after the second chunk's rows are online, before its interval is recorded; the rerun completes it."""
    import shutil

    from mlops_provider.io.feature_store import store_dir

    case = Case("SIGKILL mid materialisation", "features.materialize")
    (home.path / "feast" / "fraud" / "online.db").unlink()  # start from an empty online store
    shutil.rmtree(home.path / "feast" / "fraud" / "online.db-journal", ignore_errors=True)
    assert store_dir("fraud").startswith(str(home.path))
    args = {"start": DAYS[0].isoformat(), "end": DAY.isoformat(), "sample": 300}
    killed = home.run("materialize", args, failpoints="feast.materialize.chunk=kill@2")
    assert killed.killed, killed.output
    retry = home.run("materialize", args)
    assert retry.returncode == 0, retry.output
    check_online(case, retry.result)
    case.verify()


@pytest.fixture
def redis_db():
    redis = pytest.importorskip("redis")
    host, port, db = services.redis_host(), services.redis_port(), services.redis_db("test faults feast")
    client = redis.Redis(host=host, port=port, db=db)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as exc:
        pytest.skip(f"no Redis on {host}:{port} (start it; .ci/run does): {exc}")
    client.flushdb()  # only this family's db index
    yield host, port, db, client
    client.flushdb()


def test_redis_cut_mid_materialisation(world, home, redis_db):
    """The Redis online store drops every connection after the first chunk; the rerun (Redis back) completes it."""
    host, port, db, client = redis_db
    case = Case("Redis cut mid materialisation", "features.materialize")
    proxy = TcpProxy((host, port))

    def settings(p: int):
        return {"online_store": {"type": "redis", "connection_string": f"127.0.0.1:{p},db={db}"}}

    args = {"start": DAYS[0].isoformat(), "end": DAY.isoformat(), "sample": 300}
    proc = home.start("materialize", {**args, "settings": settings(proxy.port)}, failpoints="feast.materialize.chunk=pause")
    home.wait_reached("feast.materialize.chunk", proc)
    written = client.dbsize()
    proxy.cut()
    home.resume("feast.materialize.chunk")
    failed = home.finish(proc)
    case.check("the cut fails the try", failed.returncode not in (0, -9) and written > 0, (written, failed.output[-500:]))
    retry = home.run("materialize", {**args, "settings": settings(port)})
    assert retry.returncode == 0, retry.output
    check_online(case, retry.result)
    case.verify()
