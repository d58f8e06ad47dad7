"""Materialize the fraud entity aggregates into the local Redis and read them back.

Redis host, port and this test's db index (15; ``MLOPS_TEST_REDIS_FEAST_DB``) come from ``devkit/services.py``,
which gives every user of the shared Redis (stack tests, benchmarks, ``make stack-up``) an index of its own.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from devkit import services
from devkit.datagen import fraud

REDIS_HOST, REDIS_PORT, REDIS_DB = services.redis_host(), services.redis_port(), services.redis_db("test feast")
DAYS = [dt.date(2024, 4, 1) + dt.timedelta(days=i) for i in range(5)]


@pytest.fixture
def redis_db():
    redis = pytest.importorskip("redis")
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as exc:
        pytest.skip(f"no Redis on {REDIS_HOST}:{REDIS_PORT} (start it; .ci/run does): {exc}")
    client.flushdb()  # only this test's db index
    yield client
    client.flushdb()


@pytest.mark.integration
def test_materialize_into_redis_and_read_back(redis_db, mlops_home, fraud_project, monkeypatch):
    from mlops_provider.domain import features as F
    from mlops_provider.hooks.feast import FeastHook
    from mlops_provider.io.lake import Lake
    from mlops_provider.stages import features as SF

    monkeypatch.setenv("AIRFLOW_CONN_FEAST_REDIS", json.dumps({"conn_type": "feast", "extra": {
        "online_store": {"type": "redis", "connection_string": f"{REDIS_HOST}:{REDIS_PORT},db={REDIS_DB}"}}}))
    lake = Lake()
    for day in DAYS:
        lake.write("fraud/records", day, fraud.generate(day, 5000).drop(columns=["is_fraud"]))
        SF.compute_entity_features(fraud_project, lake, day)

    hook = FeastHook(fraud_project, feast_conn_id="feast_redis", lake=lake).feature_store()
    assert hook.online_store_type == "redis"
    hook.apply()
    ok, message = FeastHook(fraud_project, feast_conn_id="feast_redis", lake=lake).test_connection()
    assert ok, message
    result = hook.materialize(F.feature_timestamp(DAYS[0]), F.feature_timestamp(DAYS[-1]), chunk_days=1)
    assert result["chunks"] == len(DAYS)
    rate = result["rows_written"] / result["seconds"]
    print(f"\nredis materialize: {result['rows_written']} entity rows in {result['seconds']:.2f}s "
          f"= {rate:,.0f} rows/s over {result['chunks']} chunks")
    assert redis_db.dbsize() > 0

    offline = lake.read("fraud/features/entity/customer", DAYS[-1]).set_index("customer_id")
    customers = list(offline.index[:20])
    online = hook.get_online_features([{"customer_id": c} for c in customers])
    for i, customer in enumerate(customers):
        assert online["customer__count_30d"][i] == offline.loc[customer, "customer__count_30d"]
        assert online["customer__amount_mean_30d"][i] == pytest.approx(offline.loc[customer, "customer__amount_mean_30d"])
    assert hook.check_freshness(DAYS[-1], sample_size=200)["mismatches"] == 0

    # Redis keeps the newest event time per entity: re-materializing an older window changes nothing.
    hook.materialize(F.feature_timestamp(DAYS[0]), F.feature_timestamp(DAYS[1]))
    assert hook.check_freshness(DAYS[-1], sample_size=200)["mismatches"] == 0

    # A partition recomputed under the same event time (a late or backfilled earlier day changed this
    # window) is refreshed online: Feast's Redis store alone would skip a write that is not newer, and the
    # freshness check would then fail on every try.
    victim = offline.index[0]
    recomputed = offline.reset_index()
    recomputed.loc[recomputed["customer_id"] == victim, "customer__count_30d"] += 5
    lake.write("fraud/features/entity/customer", DAYS[-1], recomputed)
    hook.materialize(F.feature_timestamp(DAYS[-1]), F.feature_timestamp(DAYS[-1]))
    assert hook.check_freshness(DAYS[-1], sample_size=len(offline))["mismatches"] == 0
    online = hook.get_online_features([{"customer_id": victim}])
    assert online["customer__count_30d"][0] == offline.loc[victim, "customer__count_30d"] + 5
    # ... and still never by an older window.
    hook.materialize(F.feature_timestamp(DAYS[0]), F.feature_timestamp(DAYS[-2]))
    assert hook.check_freshness(DAYS[-1], sample_size=len(offline))["mismatches"] == 0
