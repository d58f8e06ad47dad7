"""The config matrix: every combination a user may write loads and yields a working project definition.

Each combination of (example project, source layout, label delivery, task, estimator) is loaded, and
from it the platform derives what every stage needs without running a DAG: the GX suite, the Feast
objects (views, service, feature names), the DAG arguments (retries, timeouts, timetables). A last test
checks that the matrix together sets every key of the JSON Schema, so an option added without a
config test fails here.
"""

from __future__ import annotations

import copy
import itertools

import pytest
import yaml

SOURCES = {
    "landing-csv": {"kind": "landing", "path": "landing/x"},
    "landing-parquet-pattern": {"kind": "landing", "path": "landing/x", "format": "parquet",
                                "pattern": "daily/{date:%Y%m%d}_*.parquet", "labels_pattern": "late/{date}.parquet",
                                "null_values": ["", "NA", "-"]},
    "s3": {"kind": "s3", "bucket": "lake", "prefix": "in/x", "conn_id": "aws_x", "format": "csv",
           "pattern": "records_{date}.csv", "max_file_bytes": 500_000_000},
    "postgres": {"kind": "postgres", "table": "public.records", "conn_id": "pg_x", "labels_table": "public.labels",
                 "statement_timeout_seconds": 120, "read_streams": 3},
}
LABELS = {
    "feed": lambda base: {**base["label"], "from": "feed",
                          "feed": {"record_id": "rid", "column": "target", "arrived_at": "known_at"}},
    "feed-without-arrival": lambda base: {**base["label"], "from": "feed", "feed": {"arrived_at": None}},
    "record": lambda base: {k: v for k, v in {**base["label"], "from": "record"}.items() if k != "feed"},
}
TASKS = {"fraud": "binary", "tickets": "multiclass", "deliveries": "regression"}
LIMITS = {"binary": {"roc_auc": 0.6}, "multiclass": {"accuracy": 0.3}, "regression": {"rmse": 60.0}}
ESTIMATORS = ("hist_gradient_boosting", "random_forest", "extra_trees", "linear")
EXTRA = {  # keys the bundled projects leave at their defaults, set here so the matrix covers them
    "schedule": "0 3 * * *",
    "tags": ["matrix"],
    "runs": {"retries": 3, "retry_delay_minutes": 2, "execution_timeout_minutes": 30, "dagrun_timeout_minutes": 90,
             "source_wait_hours": 1, "shard_rows": 250_000},
    "validation": {"min_rows": 10, "max_rows": 1_000_000},
}


def combinations():
    for project, (source, label), estimator in itertools.product(
            TASKS, itertools.product(SOURCES, LABELS), ESTIMATORS):
        if source == "postgres" and label == "feed-without-arrival":
            continue  # refused with its own message (tests/unit/config/test_sources.py)
        if source == "postgres" and label == "record":
            continue
        yield project, source, label, estimator


def build(project: str, source: str, label: str, estimator: str) -> dict:
    from mlops_provider.config import paths

    base = yaml.safe_load((paths.projects_dir() / f"{project}.yaml").read_text())
    data = copy.deepcopy(base)
    data.update(copy.deepcopy(EXTRA))
    data["name"] = "matrix"
    data["source"] = copy.deepcopy(SOURCES[source])
    data["label"] = LABELS[label](base)
    data["model"]["estimator"] = estimator
    data["monitoring"]["performance_limits"] = LIMITS[TASKS[project]]
    data["alerts"]["attach_max_bytes"] = 100_000
    data["promotion"]["min_hours_between_promotions"] = 48
    if project == "fraud":  # hand-written expectations name the fraud project's columns
        data["validation"]["extras"] = "fraud.extras.yaml"
    if label == "record":  # no label feed to describe
        for key in ("labels_pattern", "labels_table"):
            data["source"].pop(key, None)
    return data


@pytest.mark.parametrize("project, source, label, estimator", list(combinations()))
def test_every_combination_loads_and_derives_every_stage(tmp_path, mlops_home, project, source, label, estimator):
    from mlops_provider.config.project import load_project_file
    from mlops_provider.dag_factory import dag_kwargs
    from mlops_provider.io import feast_repo
    from mlops_provider.io.lake import Lake
    from mlops_provider.io.validation import build_suite_dict

    path = tmp_path / "matrix.yaml"
    path.write_text(yaml.safe_dump(build(project, source, label, estimator), sort_keys=False))
    config = load_project_file(path)
    assert config.model["task"] == TASKS[project] and config.model["estimator"] == estimator
    assert config.labels_in_record == (label == "record")
    suite = build_suite_dict(config)
    assert suite["expectations"], "a GX suite with expectations"
    objects = feast_repo.feature_definitions(config, Lake(str(tmp_path / "lake")))
    names = feast_repo.feature_names(config)
    assert len(names) == len(set(names)) and config.label_column not in names
    views = {o.name for o in objects if type(o).__name__ == "FeatureView"}
    assert views == {*feast_repo.entity_views(config), feast_repo.record_view_name(config)}
    kwargs = dag_kwargs(config, "ingest", "doc")
    assert kwargs["default_args"]["retries"] == 3 and kwargs["dagrun_timeout"].total_seconds() == 90 * 60


def _paths(schema: dict, prefix: str = "") -> set[str]:
    out = set()
    for key, sub in schema.get("properties", {}).items():
        path = f"{prefix}{key}"
        out.add(path)
        out |= _paths(sub, f"{path}.")
        items = sub.get("items")
        if isinstance(items, dict):
            out |= _paths(items, f"{path}[].")
    return out


def _keys(data, prefix: str = "") -> set[str]:
    out = set()
    if isinstance(data, dict):
        for key, value in data.items():
            path = f"{prefix}{key}"
            out.add(path)
            if isinstance(value, dict) and not prefix.endswith("columns.") and key not in ("columns",):
                out |= _keys(value, f"{path}.")
            elif isinstance(value, list):
                for item in value:
                    out |= _keys(item, f"{path}[].")
    return out


def test_the_matrix_sets_every_key_of_the_schema():
    from mlops_provider.config.project import _schema

    used: set[str] = set()
    for combo in combinations():
        data = build(*combo)
        used |= _keys(data)
        for spec in data["columns"].values():
            used |= {f"columns.{k}" for k in spec}
    schema = _schema()
    wanted = {p for p in _paths(schema) if not p.startswith("columns.")}
    # Column options are declared per column name (additionalProperties): checked by their own names.
    column_options = set(schema["properties"]["columns"]["additionalProperties"]["properties"])
    covered_columns = {k.split(".", 1)[1] for k in used if k.startswith("columns.")}
    missing = sorted((wanted - used) | {f"columns.*.{o}" for o in column_options - covered_columns})
    assert not missing, f"options no matrix config sets (add them to tests/unit/config/test_matrix.py): {missing}"
