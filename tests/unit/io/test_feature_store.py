"""Feature stage: window aggregates, Feast apply/materialize into SQLite, freshness, point-in-time correctness."""

from __future__ import annotations

import datetime as dt
import sqlite3

import pandas as pd
import pytest

from devkit.datagen import fraud

DAYS = [dt.date(2024, 3, 1) + dt.timedelta(days=i) for i in range(4)]
ROWS = 2000


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Four days of validated records, their features, and a Feast store materialized into SQLite.

    Built once per module (Feast apply and materialize are the slow part); tests that change state
    restore it or run last.
    """
    home = tmp_path_factory.mktemp("features-home")
    mp = pytest.MonkeyPatch()
    mp.setenv("MLOPS_HOME", str(home))
    from mlops_provider.config.project import load_project
    from mlops_provider.domain import features as F
    from mlops_provider.hooks.feast import FeastHook
    from mlops_provider.io.lake import Lake
    from mlops_provider.stages import features as SF

    project = load_project("fraud")
    lake = Lake()
    raw = {}
    for day in DAYS:
        batch = fraud.generate(day, ROWS).drop(columns=["is_fraud"])
        raw[day] = batch
        lake.write("fraud/records", day, batch)
    summaries = {day: (SF.compute_entity_features(project, lake, day), SF.compute_record_features(project, lake, day))
                 for day in DAYS}
    hook = FeastHook(project, lake=lake).feature_store()
    hook.apply()
    materialized = hook.materialize(F.feature_timestamp(DAYS[0]), F.feature_timestamp(DAYS[-1]), chunk_days=2)
    yield {"project": project, "lake": lake, "hook": hook, "raw": pd.concat(raw.values(), ignore_index=True),
           "summaries": summaries, "materialized": materialized, "home": home}
    mp.undo()


def _expected(raw: pd.DataFrame, customer: str, day: dt.date) -> dict[str, float]:
    """The aggregates of ``customer`` for partition ``day``, straight from the raw events."""
    ev = raw[raw["customer_id"] == customer]
    date = ev["event_timestamp"].dt.date
    out = {}
    for w in (1, 7, 30):
        win = ev[(date > day - dt.timedelta(days=w)) & (date <= day)]
        out[f"customer__count_{w}d"] = len(win)
        out[f"customer__amount_sum_{w}d"] = win["amount"].sum()
        out[f"customer__amount_mean_{w}d"] = win["amount"].mean() if len(win) else 0.0
    win = ev[(date > day - dt.timedelta(days=30)) & (date <= day)]
    out["customer__merchant_category_distinct_count_30d"] = win["merchant_category"].nunique()
    out["customer__country_share_us_30d"] = (win["country"] == "US").mean()
    end_of_day = pd.Timestamp(day + dt.timedelta(days=1))
    out["customer__hours_since_last"] = (end_of_day - win["event_timestamp"].max()) / pd.Timedelta(hours=1)
    return out


def test_entity_aggregates_match_pandas(world):
    lake, raw, day = world["lake"], world["raw"], DAYS[-1]
    table = lake.read("fraud/features/entity/customer", day)
    assert table["customer_id"].is_unique
    assert set(table["customer_id"]) == set(raw.loc[raw["event_timestamp"].dt.date <= day, "customer_id"])
    assert (table["event_timestamp"] == pd.Timestamp("2024-03-05", tz="UTC")).all()
    busiest = raw["customer_id"].value_counts().index[0]
    idle_today = sorted(set(table["customer_id"]) - set(raw.loc[raw["event_timestamp"].dt.date == day, "customer_id"]))[0]
    for customer in (busiest, idle_today):
        row = table.set_index("customer_id").loc[customer]
        for name, value in _expected(raw, customer, day).items():
            assert row[name] == pytest.approx(value, rel=1e-9), (customer, name)
    assert table.set_index("customer_id").loc[idle_today, "customer__count_1d"] == 0


def test_record_features_typed_for_the_model(world):
    lake, day = world["lake"], DAYS[0]
    table = lake.read("fraud/features/record", day)
    raw = world["raw"].set_index("transaction_id")
    assert len(table) == ROWS and table["transaction_id"].is_unique
    assert set(table["card_present"].unique()) <= {0, 1}
    sample = table.iloc[123]
    assert sample["hour_of_day"] == raw.loc[sample["transaction_id"], "event_timestamp"].hour
    assert sample["merchant_category"] == raw.loc[sample["transaction_id"], "merchant_category"]
    assert world["summaries"][day][1]["rows"] == ROWS


def test_definitions_and_references(world):
    from mlops_provider.io import feast_repo as R

    project, store = world["project"], world["hook"].store
    assert {fv.name for fv in store.list_feature_views()} == {"fraud_customer_aggregates", "fraud_record_features"}
    assert store.get_feature_view("fraud_customer_aggregates").ttl == dt.timedelta(days=31)
    assert store.get_feature_service("fraud_classifier")
    refs = R.feature_references(project)
    assert "fraud_customer_aggregates:customer__amount_mean_7d" in refs and "fraud_record_features:hour_of_day" in refs
    assert R.feature_names(project)[-1] == "hour_of_day"


def test_materialize_and_online_read(world):
    hook, lake, day = world["hook"], world["lake"], DAYS[-1]
    assert world["materialized"]["chunks"] == 2
    offline = lake.read("fraud/features/entity/customer", day).set_index("customer_id")
    customers = list(offline.index[:3])
    online = hook.get_online_features([{"customer_id": c} for c in customers] + [{"customer_id": "nobody"}])
    for i, customer in enumerate(customers):
        assert online["customer__count_30d"][i] == offline.loc[customer, "customer__count_30d"]
        assert online["customer__amount_sum_7d"][i] == pytest.approx(offline.loc[customer, "customer__amount_sum_7d"])
    assert online["customer__count_30d"][3] is None
    assert hook.check_freshness(day)["mismatches"] == 0


def test_point_in_time_join_never_sees_the_future(world):
    """THE LEAKAGE TEST: an event at time t only gets aggregates of events strictly before t's day."""
    hook, raw = world["hook"], world["raw"]
    # Events of the busiest customers on days 2-4: each has a later feature row (its own day's partition,
    # which counts the event itself) that differs from the one it must get.
    busiest = raw["customer_id"].value_counts().index[:5]
    events = raw[raw["customer_id"].isin(busiest) & (raw["event_timestamp"].dt.date > DAYS[0])]
    entity_df = events[["customer_id", "transaction_id", "event_timestamp"]].copy()
    entity_df["event_timestamp"] = entity_df["event_timestamp"].dt.tz_localize("UTC")
    # Boundary rows: exactly at midnight the previous day's partition is known; a microsecond before, it is not.
    midnight = pd.Timestamp(DAYS[2], tz="UTC")
    first = events.iloc[0]
    boundary = pd.DataFrame({"customer_id": [first["customer_id"]] * 2, "transaction_id": ["none-a", "none-b"],
                             "event_timestamp": [midnight, midnight - pd.Timedelta(microseconds=1)]})
    result = hook.get_historical_features(pd.concat([entity_df, boundary], ignore_index=True))
    assert len(result) == len(entity_df) + 2

    lake = world["lake"]
    later_differs = 0
    for row in result.itertuples(index=False):
        t = row.event_timestamp
        known_day = t.date() - dt.timedelta(days=1)  # partition d is stamped midnight of d + 1
        ev = raw[(raw["customer_id"] == row.customer_id)]
        before = ev[ev["event_timestamp"].dt.tz_localize("UTC") < t.normalize()]
        # Every event counted happened strictly before the start of t's day, hence before t.
        assert row.customer__count_30d == len(before[before["event_timestamp"].dt.date > known_day - dt.timedelta(days=30)])
        partition = lake.read("fraud/features/entity/customer", known_day).set_index("customer_id")
        if known_day >= DAYS[0]:
            assert row.customer__amount_sum_7d == pytest.approx(partition.loc[row.customer_id, "customer__amount_sum_7d"])
        later = lake.read("fraud/features/entity/customer", t.date()).set_index("customer_id")
        if t.date() <= DAYS[-1] and later.loc[row.customer_id, "customer__count_30d"] != row.customer__count_30d:
            later_differs += 1
    assert later_differs >= len(entity_df)  # each real event's own-day partition counts it: a leak would show

    by_ts = result.set_index("event_timestamp")
    at_midnight = by_ts.loc[midnight]
    just_before = by_ts.loc[midnight - pd.Timedelta(microseconds=1)]
    assert at_midnight["customer__count_30d"] == len(
        raw[(raw["customer_id"] == first["customer_id"]) & (raw["event_timestamp"] < midnight.tz_localize(None))])
    assert just_before["customer__count_30d"] == len(
        raw[(raw["customer_id"] == first["customer_id"])
            & (raw["event_timestamp"] < (midnight - pd.Timedelta(days=1)).tz_localize(None))])
    # Record features come from the record itself.
    real = result[result["transaction_id"].isin(events["transaction_id"])].set_index("transaction_id")
    src = events.set_index("transaction_id")
    assert (real["merchant_category"] == src.loc[real.index, "merchant_category"]).all()


def test_fast_retrieval_equals_feast_join_row_for_row(world):
    """The reduced inputs (one probe per entity and day, the record's own partition) give Feast's exact answer.

    Compared with Feast's own ``get_historical_features`` on every event row: real events of every day,
    midnight and one microsecond before it, a TTL edge (the oldest midnight a window admits), a customer
    with no history and a record id that does not exist.
    """
    import numpy as np
    from mlops_provider.io import feast_repo as R

    hook, raw = world["hook"], world["raw"]
    events = raw.sample(n=600, random_state=3)[["customer_id", "transaction_id", "event_timestamp"]].copy()
    events["event_timestamp"] = events["event_timestamp"].dt.tz_localize("UTC")
    customer = events["customer_id"].iloc[0]
    # The last partition is stamped DAYS[-1] + 1 day; the view's TTL (31 days) admits it until exactly `edge`.
    edge = pd.Timestamp(DAYS[-1] + dt.timedelta(days=1 + 31), tz="UTC")
    extra = pd.DataFrame({
        "customer_id": [customer, customer, customer, customer, "C-new", customer],
        "transaction_id": ["x-a", "x-b", "x-c", "x-d", "x-e", events["transaction_id"].iloc[1]],
        "event_timestamp": [pd.Timestamp(DAYS[2], tz="UTC"), pd.Timestamp(DAYS[2], tz="UTC") - pd.Timedelta("1us"),
                            edge, edge + pd.Timedelta("1us"), pd.Timestamp(DAYS[3], tz="UTC") + pd.Timedelta("5h"),
                            events["event_timestamp"].iloc[1] + pd.Timedelta("1us")],
    })
    entity_df = pd.concat([events, extra], ignore_index=True)
    fast = hook.get_historical_features(entity_df)

    store = hook.store
    service = store.get_feature_service(R.feature_service_name(hook.project))
    frame = entity_df.assign(__row=np.arange(len(entity_df)))
    plain = frame
    for projection in service.feature_view_projections:
        names = [f.name for f in projection.features]
        part = hook._feast_join(store, projection, frame, names, "__row")
        plain = plain.merge(part, on="__row", how="left")
    from mlops_provider.domain.features import fill_missing_history

    plain = fill_missing_history(hook.project, plain.sort_values("__row").drop(columns="__row").reset_index(drop=True))
    names = R.feature_names(hook.project)
    assert len(fast) == len(plain) == len(entity_df)
    for name in names:
        a, b = fast[name], plain[name]
        if pd.api.types.is_numeric_dtype(b) and pd.api.types.is_numeric_dtype(a):
            np.testing.assert_allclose(a.astype(float), b.astype(float), rtol=1e-12, err_msg=name)
        else:
            assert (a.isna() == b.isna()).all() and (a[a.notna()].astype(str) == b[b.notna()].astype(str)).all(), name
    # The edge rows really differ: the 31-day-old partition is admitted at exactly midnight, not after it.
    at_edge, after_edge = fast.iloc[len(events) + 2], fast.iloc[len(events) + 3]
    assert at_edge["customer__count_30d"] > 0 and after_edge["customer__count_30d"] == 0


def test_partition_being_written_is_invisible_to_feast(world):
    """A hidden temporary file of an in-flight partition write must not reach the point-in-time join."""
    lake, hook, day = world["lake"], world["hook"], DAYS[1]
    partition = lake.read("fraud/features/entity/customer", day)
    ghost = partition.assign(customer__count_30d=999_999,
                             created_timestamp=partition["created_timestamp"] + pd.Timedelta(days=1))
    tmp = lake.partition_dir("fraud/features/entity/customer", day) + "/.tmp-inflight.parquet"
    ghost.to_parquet(tmp, index=False)
    try:
        customers = partition["customer_id"].iloc[:5]
        entity_df = pd.DataFrame({"customer_id": customers, "transaction_id": "none",
                                  "event_timestamp": pd.Timestamp(day + dt.timedelta(days=1), tz="UTC")})
        result = hook.get_historical_features(entity_df)
    finally:
        lake.fs.delete_file(tmp)
    assert (result["customer__count_30d"] < 999_999).all()
    # No record id matched: Feast's Dask store fails on such a view; the hook joins it as missing values.
    assert result["merchant_category"].isna().all() and len(result) == len(customers)
    expected = partition.set_index("customer_id").loc[customers, "customer__count_30d"].to_numpy()
    assert (result.set_index("customer_id").loc[customers, "customer__count_30d"].to_numpy() == expected).all()


def test_rerun_is_idempotent(world):
    from mlops_provider.domain import features as F
    from mlops_provider.stages import features as SF

    project, lake, hook, day = world["project"], world["lake"], world["hook"], DAYS[-1]
    before = lake.read("fraud/features/entity/customer", day).drop(columns=["created_timestamp"])
    db = world["home"] / "feast" / "fraud" / "online.db"
    with sqlite3.connect(db) as conn:
        rows_before = conn.execute("select count(*) from fraud_fraud_customer_aggregates").fetchone()[0]
    SF.compute_entity_features(project, lake, day)
    SF.compute_record_features(project, lake, day)
    hook.apply()
    hook.materialize(F.feature_timestamp(day - dt.timedelta(days=1)), F.feature_timestamp(day))
    after = lake.read("fraud/features/entity/customer", day).drop(columns=["created_timestamp"])
    pd.testing.assert_frame_equal(before, after)
    assert lake.partitions("fraud/features/entity/customer") == DAYS
    with sqlite3.connect(db) as conn:
        assert conn.execute("select count(*) from fraud_fraud_customer_aggregates").fetchone()[0] == rows_before
    assert hook.check_freshness(day)["mismatches"] == 0


def test_an_older_window_materialized_again_keeps_the_newer_online_values(world):
    """Re-materializing the first days after the last one leaves the last day's values online (SQLite, like Redis)."""
    from mlops_provider.domain import features as F

    lake, hook, last = world["lake"], world["hook"], DAYS[-1]
    offline = lake.read("fraud/features/entity/customer", last).set_index("customer_id")
    customers = list(offline.index[:50])
    hook.materialize(F.feature_timestamp(DAYS[0]), F.feature_timestamp(DAYS[1]), chunk_days=1)
    online = hook.get_online_features([{"customer_id": c} for c in customers], include_event_timestamps=True)
    newest = pd.Timestamp(F.feature_timestamp(last)).timestamp()
    for i, customer in enumerate(customers):
        ts = online["customer__count_30d__ts"][i]
        assert (ts.timestamp() if isinstance(ts, dt.datetime) else ts) == newest, customer
        assert online["customer__count_30d"][i] == offline.loc[customer, "customer__count_30d"], customer
    assert hook.check_freshness(last, sample_size=200)["mismatches"] == 0
    db = world["home"] / "feast" / "fraud" / "online.db"
    with sqlite3.connect(db) as conn:
        triggers = [r[0] for r in conn.execute("select name from sqlite_master where type = 'trigger'")]
    assert triggers == ["fraud_fraud_customer_aggregates_newest_event_wins"]


def test_operators_compute_and_materialize(world):
    import json

    from mlops_provider.operators.features import ComputeFeaturesOperator, MaterializeFeaturesOperator

    day = DAYS[-1].isoformat()
    compute = ComputeFeaturesOperator(task_id="compute", project_name="fraud", day=day)
    materialize = MaterializeFeaturesOperator(task_id="materialize", project_name="fraud", start=day, end=day)
    assert {"day"} <= set(compute.template_fields) and {"start", "end"} <= set(materialize.template_fields)
    computed = compute.execute(context={})
    assert computed["records"] == ROWS and computed["entities"] > 0
    result = materialize.execute(context={})
    json.dumps([computed, result])  # small, XCom-able
    assert result["first_partition"] == (DAYS[-2]).isoformat()  # overlap of one day from the project file
    assert result["freshness_mismatches"] == 0 and result["freshness_checked"] == 50


def test_tampered_online_value_is_detected(world):
    """Runs last among the stateful tests: it corrupts one online value."""
    from mlops_provider.exceptions import FeatureFreshnessError

    lake, hook, day = world["lake"], world["hook"], DAYS[-1]
    offline = lake.read("fraud/features/entity/customer", day)
    victim = offline.iloc[[7]].copy()
    victim["customer__amount_sum_7d"] = victim["customer__amount_sum_7d"] + 1.0
    hook.store.write_to_online_store("fraud_customer_aggregates", victim)
    with pytest.raises(FeatureFreshnessError) as err:
        hook.check_freshness(day, sample_size=len(offline))
    message = str(err.value)
    assert victim["customer_id"].iloc[0] in message and "customer__amount_sum_7d" in message
    tampered, true = float(victim["customer__amount_sum_7d"].iloc[0]), float(offline["customer__amount_sum_7d"].iloc[7])
    assert f"online {tampered!r} != offline {true!r}" in message
    assert "1 value(s)" in message


def test_hook_connection_selects_online_store(monkeypatch, mlops_home, fraud_project):
    import json

    from mlops_provider.hooks.feast import FeastHook

    default = FeastHook(fraud_project).get_conn().config
    assert default.online_store.type == "sqlite"
    assert default.online_store.path == str(mlops_home / "feast" / "fraud" / "online.db")
    monkeypatch.setenv("AIRFLOW_CONN_FEAST_TEST", json.dumps({"conn_type": "feast", "extra": {
        "online_store": {"type": "redis", "connection_string": "127.0.0.1:6379,db=13"}}}))
    config = FeastHook(fraud_project, feast_conn_id="feast_test").get_conn().config
    assert config.online_store.type == "redis"
    assert config.online_store.connection_string == "127.0.0.1:6379,db=13"
