"""The ``source`` / ``label`` / ``columns`` options of a project YAML: defaults from the schema, every option
loads, every bad value is named by file, key and problem (issue 13)."""

from __future__ import annotations

import pytest
import yaml
from mlops_provider.config.paths import projects_dir
from mlops_provider.config.project import _schema, load_project, load_project_file, schema_default
from mlops_provider.exceptions import ProjectConfigError
from mlops_provider.io.sources import ReadSpec


def _write(tmp_path, mutate, name="flights"):
    data = yaml.safe_load((projects_dir() / "fraud.yaml").read_text())
    data["name"] = name
    mutate(data)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_every_new_option_has_a_default_or_a_described_fallback_and_a_description():
    props = _schema()["properties"]
    source, label = props["source"]["properties"], props["label"]["properties"]
    for key in ("format", "pattern", "labels_pattern", "null_values"):
        assert "default" in source[key] and source[key]["description"], key
    assert label["from"]["default"] == "feed" and label["from"]["description"]
    feed = label["feed"]["properties"]
    assert feed["arrived_at"]["default"] == "label_timestamp"
    for key in ("record_id", "column"):
        assert "(default: " in feed[key]["description"], key  # filled in from the record's names
    # ReadSpec's defaults (used without a project) are the schema's.
    spec = ReadSpec()
    assert (spec.format, spec.pattern, spec.labels_pattern) == (
        schema_default("source.format"), schema_default("source.pattern"), schema_default("source.labels_pattern"))
    assert list(spec.null_values) == schema_default("source.null_values") and "" in spec.null_values


@pytest.mark.parametrize("name", ["fraud", "churn"])
def test_bundled_projects_keep_todays_layout(name):
    project = load_project(name)
    spec = ReadSpec.from_project(project)
    assert (spec.format, spec.pattern, spec.labels_pattern) == ("csv", "records/{date}.{format}", "labels/{date}.{format}")
    assert not project.labels_in_record and project.label_column not in project.input_columns
    assert project.label_feed == {"record_id": project.record_id, "column": project.label_column,
                                  "arrived_at": "label_timestamp"}
    assert spec.label_feed.rename() == {project.record_id: project.record_id, project.label_column: project.label_column,
                                        "label_timestamp": "label_timestamp"}


def test_all_options_load(tmp_path):
    def mutate(d):
        d["source"].update(format="parquet", pattern="{date:%Y}/flights_{date:%Y%m%d}_*.{format}",
                           labels_pattern="late/{date}.parquet", null_values=["", "NA", "-"])
        d["label"].update({"from": "feed", "feed": {"record_id": "txn", "column": "fraud", "arrived_at": None}})

    project = load_project_file(_write(tmp_path, mutate))
    spec = ReadSpec.from_project(project)
    assert spec.format == "parquet" and spec.pattern.startswith("{date:%Y}/") and spec.null_values == ("", "NA", "-")
    assert spec.label_feed.rename() == {"txn": "transaction_id", "fraud": "is_fraud"}
    assert spec.label_feed.types == {"txn": "string", "fraud": "integer"}


def test_label_in_record(tmp_path):
    project = load_project_file(_write(tmp_path, lambda d: d["label"].update({"from": "record"})))
    assert project.labels_in_record and project.label_column in project.input_columns
    assert ReadSpec.from_project(project).label_feed is None
    assert "labels_pattern" not in project.source and "feed" not in project.raw["label"]


def test_postgres_gets_no_file_options(tmp_path):
    project = load_project_file(_write(tmp_path, lambda d: d.update(
        source={"kind": "postgres", "conn_id": "pg", "table": "s.t", "labels_table": "s.l"})))
    assert set(project.source) == {"kind", "conn_id", "table", "labels_table", "null_values",
                                   "statement_timeout_seconds", "read_streams"}
    assert project.source["statement_timeout_seconds"] == 600 and project.source["read_streams"] == 2


def test_file_sources_get_no_postgres_options(tmp_path):
    project = load_project_file(_write(tmp_path, lambda d: None))
    assert project.source["kind"] == "landing" and not {"statement_timeout_seconds", "read_streams"} & set(project.source)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["source"].update(format="xlsx"), "key 'source.format': 'xlsx' is not one of ['csv', 'parquet']"),
        (lambda d: d["source"].update(pattern="flights.csv"),
         "key 'source.pattern': 'flights.csv' has no {date} placeholder"),
        (lambda d: d["source"].update(pattern="flights_{day}.csv"),
         "key 'source.pattern': 'flights_{day}.csv' unknown placeholder(s) ['day']"),
        (lambda d: d["source"].update(pattern="flights_{date.csv"), "key 'source.pattern': 'flights_{date.csv' not a valid pattern"),
        (lambda d: d["source"].update(pattern="../other/{date}.csv"), "must be a relative file path below the source"),
        (lambda d: d["source"].update(pattern="/abs/{date}.csv"), "must be a relative file path below the source"),
        (lambda d: d["source"].update(labels_pattern="x/{date}.{format!r}"), "key 'source.labels_pattern'"),
        (lambda d: d["source"].update(pattern="{date}.csv", labels_pattern="{date}.csv"),
         "key 'source.labels_pattern': '{date}.csv' is also source.pattern"),
        (lambda d: d["source"].update(null_values="NA"), "key 'source.null_values': 'NA' is not of type 'array'"),
        (lambda d: d["source"].update(null_values=["", ""]), "key 'source.null_values'"),
        (lambda d: d.update(source={"kind": "postgres", "conn_id": "pg", "table": "t", "pattern": "{date}.csv"}),
         "key 'source.pattern': not used by a postgres source (only by landing and s3)"),
        (lambda d: d["source"].update(labels_table="t"), "key 'source.labels_table': not used by a landing source (only by postgres)"),
        (lambda d: d["source"].update(bucket="b"), "key 'source.bucket': not used by a landing source (only by s3)"),
        (lambda d: d["label"].update({"from": "somewhere"}), "key 'label.from': 'somewhere' is not one of ['feed', 'record']"),
        (lambda d: d["label"].update({"from": "record", "feed": {"column": "x"}}),
         "key 'label.feed': label.from is 'record'"),
        (lambda d: d["label"].update({"feed": {"label": "x"}}), "key 'label.feed': Additional properties are not allowed"),
        (lambda d: (d.update(source={"kind": "postgres", "conn_id": "pg", "table": "t", "labels_table": "l"}),
                    d["label"].update(feed={"arrived_at": None})),
         "key 'label.feed.arrived_at': a postgres label feed is read by its arrival timestamp column"),
        (lambda d: d["columns"]["customer_id"].update(nullable=True),
         "key 'columns.customer_id.nullable': the entity.key column can never be null"),
        (lambda d: d["columns"]["transaction_id"].update(nullable=True),
         "key 'columns.transaction_id.nullable': the record_id column can never be null"),
    ],
)
def test_bad_source_and_label_options_name_file_key_and_problem(tmp_path, mutate, expected):
    path = _write(tmp_path, mutate)
    with pytest.raises(ProjectConfigError) as err:
        load_project_file(path)
    assert str(path) in str(err.value)
    assert expected in str(err.value)
