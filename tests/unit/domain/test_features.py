"""Declared features: every aggregation, two entities and record features, checked against plain pandas,
then through Feast: the point-in-time join of each entity's view never sees the record's own day."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import yaml

from devkit.datagen import fraud

DAYS = [dt.date(2024, 5, 1) + dt.timedelta(days=i) for i in range(3)]
ROWS = 600
FEATURES = {
    "windows_days": [1, 3],
    "entities": [{"name": "category", "key": "merchant_category"}],
    "aggregations": [
        {"aggs": ["count", "hours_since_last"]},
        {"column": "amount", "aggs": ["sum", "mean", "min", "max", "std"]},
        {"column": "channel", "aggs": ["last", "distinct_count"], "windows_days": [3]},
        {"column": "country", "aggs": ["share"], "value": "US", "windows_days": [3]},
        {"column": "card_present", "aggs": ["mean"], "windows_days": [3]},
        {"entity": "category", "aggs": ["count"], "windows_days": [2]},
        {"entity": "category", "column": "amount", "aggs": ["max", "mean"], "windows_days": [2]},
    ],
    # merchant_category is also the category entity's key: a key the model reads as a feature too.
    "record": {"columns": ["amount", "channel", "merchant_category"],
               "time_parts": ["hour_of_day", "day_of_week", "day_of_month", "month"]},
}


def declared_project(directory, features=FEATURES, name="declared"):
    """The fraud project's YAML with ``features`` instead of its own, under another name."""
    from mlops_provider.config import paths
    from mlops_provider.config.project import load_project_file

    raw = yaml.safe_load((paths.projects_dir() / "fraud.yaml").read_text())
    raw.update(name=name, features=features)
    raw["model"]["name"] = f"{name}_model"
    raw["monitoring"].pop("features", None)
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_project_file(path)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    home = tmp_path_factory.mktemp("declared-home")
    mp = pytest.MonkeyPatch()
    mp.setenv("MLOPS_HOME", str(home))
    from mlops_provider.domain import features as F
    from mlops_provider.io.feature_store import ProjectFeatureStore
    from mlops_provider.io.lake import Lake
    from mlops_provider.stages import features as SF

    project = declared_project(tmp_path_factory.mktemp("projects"))
    lake = Lake()
    raw = []
    for day in DAYS:
        batch = fraud.generate(day, ROWS).drop(columns=["is_fraud"])
        raw.append(batch)
        lake.write("declared/records", day, batch)
        SF.compute_entity_features(project, lake, day)
        SF.compute_record_features(project, lake, day)
    store = ProjectFeatureStore(project, lake=lake)
    store.apply()
    store.materialize(F.feature_timestamp(DAYS[0]), F.feature_timestamp(DAYS[-1]))
    yield {"project": project, "lake": lake, "store": store, "raw": pd.concat(raw, ignore_index=True)}
    mp.undo()


def expected(raw: pd.DataFrame, key: str, value: str, day: dt.date, window: int) -> dict[str, object]:
    """Plain pandas over the records of ``key == value`` in the ``window`` days ending ``day``."""
    dates = raw["event_timestamp"].dt.date
    win = raw[(raw[key] == value) & (dates > day - dt.timedelta(days=window)) & (dates <= day)]
    last = win.sort_values("event_timestamp", kind="stable")
    return {"count": len(win), "sum": win["amount"].sum(), "mean": win["amount"].mean() if len(win) else 0.0,
            "min": win["amount"].min(), "max": win["amount"].max(), "std": win["amount"].std(ddof=1),
            "last_channel": last["channel"].iloc[-1] if len(win) else None,
            "distinct_channel": win["channel"].nunique(), "share_us": (win["country"] == "US").mean(),
            "card_present": win["card_present"].astype(float).mean() if len(win) else 0.0,
            "hours": (pd.Timestamp(day + dt.timedelta(days=1)) - win["event_timestamp"].max()) / pd.Timedelta(hours=1)}


def close(actual, wanted) -> bool:
    if wanted is None or (isinstance(wanted, float) and np.isnan(wanted)):
        return actual is None or (isinstance(actual, float) and np.isnan(actual))
    if isinstance(wanted, str):
        return actual == wanted
    return actual == pytest.approx(wanted, rel=1e-9, abs=1e-9)


def test_names_derive_from_the_declaration(world):
    spec = world["project"].feature_spec
    names = [a.name for a in spec.aggregations]
    assert names[:4] == ["customer__count_1d", "customer__count_3d", "customer__hours_since_last",
                         "customer__amount_sum_1d"]
    assert {"customer__channel_last_3d", "customer__channel_distinct_count_3d", "customer__country_share_us_3d",
            "customer__card_present_mean_3d", "category__count_2d", "category__amount_max_2d"} <= set(names)
    assert spec.record_feature_names() == ["amount", "channel", "merchant_category", "hour_of_day", "day_of_week",
                                           "day_of_month", "month"]
    assert "customer__channel_last_3d" in spec.categorical_names(world["project"].columns)


def test_every_aggregation_matches_pandas(world):
    lake, raw, day = world["lake"], world["raw"], DAYS[-1]
    table = lake.read("declared/features/entity/customer", day).set_index("customer_id")
    customers = list(raw["customer_id"].value_counts().index[:15]) + [raw["customer_id"].iloc[-1]]
    for customer in customers:
        row = table.loc[customer]
        for w in (1, 3):
            e = expected(raw, "customer_id", customer, day, w)
            for agg in ("count", "sum", "mean", "min", "max", "std"):
                name = f"customer__count_{w}d" if agg == "count" else f"customer__amount_{agg}_{w}d"
                assert close(row[name], e[agg]), (customer, name, row[name], e[agg])
        e = expected(raw, "customer_id", customer, day, 3)
        assert close(row["customer__channel_last_3d"], e["last_channel"])
        assert row["customer__channel_distinct_count_3d"] == e["distinct_channel"]
        assert close(row["customer__country_share_us_3d"], e["share_us"])
        assert close(row["customer__card_present_mean_3d"], e["card_present"])
        assert close(row["customer__hours_since_last"], e["hours"])
    categories = lake.read("declared/features/entity/category", day).set_index("merchant_category")
    assert set(categories.index) == set(raw[raw["event_timestamp"].dt.date >= DAYS[-2]]["merchant_category"])
    for category in categories.index:
        e = expected(raw, "merchant_category", category, day, 2)
        assert categories.loc[category, "category__count_2d"] == e["count"]
        assert close(categories.loc[category, "category__amount_max_2d"], e["max"])
        assert close(categories.loc[category, "category__amount_mean_2d"], e["mean"])


def test_record_features_and_time_parts(world):
    lake, raw = world["lake"], world["raw"]
    table = lake.read("declared/features/record", DAYS[0]).set_index("transaction_id")
    first = raw.iloc[0]
    row = table.loc[first["transaction_id"]]
    ts = first["event_timestamp"]
    assert (row["hour_of_day"], row["day_of_week"], row["day_of_month"], row["month"]) == (
        ts.hour, ts.dayofweek, ts.day, ts.month)
    assert row["channel"] == first["channel"] and row["amount"] == pytest.approx(first["amount"])


def test_point_in_time_join_of_every_entity_never_sees_the_future(world):
    """THE LEAKAGE TEST, for two entities: a record at t gets each entity's aggregates of the day before t's."""
    store, lake, raw = world["store"], world["lake"], world["raw"]
    events = raw[raw["event_timestamp"].dt.date == DAYS[-1]].head(200)
    entity_df = events[["customer_id", "merchant_category", "transaction_id", "event_timestamp"]].copy()
    entity_df["event_timestamp"] = entity_df["event_timestamp"].dt.tz_localize("UTC")
    result = store.get_historical_features(entity_df)
    assert len(result) == len(entity_df)
    # A key that is also a feature comes back once, as the record's own value (it went missing as _x/_y).
    assert list(result["merchant_category"]) == list(entity_df["merchant_category"])
    assert not [c for c in result.columns if c.endswith(("_x", "_y"))]
    known = DAYS[-2]
    customers = lake.read("declared/features/entity/customer", known).set_index("customer_id")
    categories = lake.read("declared/features/entity/category", known).set_index("merchant_category")
    for row in result.itertuples(index=False):
        if row.customer_id in customers.index:
            assert row.customer__count_3d == customers.loc[row.customer_id, "customer__count_3d"]
        else:  # no history yet: zero counts, missing extremes
            assert row.customer__count_3d == 0 and np.isnan(row.customer__amount_max_3d)
        assert row.category__count_2d == categories.loc[row.merchant_category, "category__count_2d"]
        # The record's own day is never counted.
        own_day = raw[(raw["merchant_category"] == row.merchant_category)
                      & (raw["event_timestamp"].dt.date > known - dt.timedelta(days=2))]
        assert row.category__count_2d < len(own_day)


def test_online_store_serves_every_entity(world):
    result = world["store"].check_freshness(DAYS[-1], sample_size=20)
    assert {r["entity"] for r in result["per_entity"]} == {"customer", "category"}
    assert result["checked"] > 20 and result["mismatches"] == 0


@pytest.mark.parametrize("change, problem", [
    ({"aggregations": [{"column": "nope", "aggs": ["sum"]}]}, "column 'nope' is not declared"),
    ({"aggregations": [{"column": "channel", "aggs": ["sum"]}]}, "need a numeric column; 'channel' is category"),
    ({"aggregations": [{"aggs": ["share"], "column": "country"}]}, "need the value whose share is measured"),
    ({"aggregations": [{"aggs": ["mean"]}]}, "need a column"),
    ({"aggregations": [{"entity": "route", "aggs": ["count"]}]}, "'route' is not an entity"),
    ({"entities": [{"name": "route", "key": "route"}]}, "column 'route' is not declared"),
    ({"record": {"columns": ["is_fraud"]}}, "is the label"),
    ({"aggregations": [{"column": "is_fraud", "aggs": ["mean"]}]}, "aggregating it would leak labels"),
    ({"aggregations": [{"aggs": ["count"]}, {"aggs": ["count"], "windows_days": [1]}]}, "declared twice"),
])
def test_bad_declarations_name_the_key_and_the_problem(tmp_path, mlops_home, change, problem):
    from mlops_provider.exceptions import ProjectConfigError

    with pytest.raises(ProjectConfigError, match="features") as err:
        declared_project(tmp_path, {"windows_days": [1], **change}, name="broken")
    assert problem in str(err.value)
