"""Project YAML loading: the bundled projects are valid and every mistake is named precisely."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml
from mlops_provider.config.paths import projects_dir
from mlops_provider.config.project import load_project, load_project_file, load_projects
from mlops_provider.exceptions import ProjectConfigError


def test_bundled_projects_load():
    projects = load_projects()
    names = [p.name for p in projects]
    assert "fraud" in names and len(names) >= 2, names
    fraud = load_project("fraud")
    assert fraud.entity_key == "customer_id"
    assert fraud.label_column not in fraud.input_columns
    assert fraud.model["hpo_trials"] == 4
    assert fraud.monitoring["sample_rows"] == 50000  # default filled in from the schema
    assert fraud.dag_id("ingest") == "fraud__ingest"


def _write(tmp_path, name, mutate):
    data = yaml.safe_load((projects_dir() / "fraud.yaml").read_text())
    data["name"] = name
    mutate(data)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d.pop("entity"), "'entity' is a required property"),
        (lambda d: d["source"].update(kind="ftp"), "key 'source.kind'"),
        (lambda d: d["columns"]["amount"].update(type="money"), "key 'columns.amount.type'"),
        (lambda d: d.update(record_id="txn"), "key 'record_id': column 'txn' is not declared"),
        (lambda d: d["source"].update(kind="postgres"), "key 'source.table': required when source.kind is 'postgres'"),
        (lambda d: d["alerts"].update(recipients=["not-an-address"]), "key 'alerts.recipients.0'"),
        (lambda d: d["promotion"].update(primary_metric="accuracy"), "key 'promotion.primary_metric'"),
        (lambda d: d.update(surprise=1), "Additional properties are not allowed ('surprise'"),
        (lambda d: d["monitoring"].update(features=["amount", "amount_typo"]),
         "key 'monitoring.features': ['amount_typo'] are not model features"),
        (lambda d: d.update(runs={"retries": -1}), "key 'runs.retries'"),
    ],
)
def test_invalid_config_names_file_key_and_problem(tmp_path, mutate, expected):
    path = _write(tmp_path, "broken", mutate)
    with pytest.raises(ProjectConfigError) as err:
        load_project_file(path)
    assert str(path) in str(err.value)
    assert expected in str(err.value)


def test_name_must_match_file(tmp_path):
    path = _write(tmp_path, "other", lambda d: None)
    shutil.move(path, tmp_path / "renamed.yaml")
    with pytest.raises(ProjectConfigError, match="must match the file name 'renamed'"):
        load_project_file(tmp_path / "renamed.yaml")


def test_unknown_project_lists_known_ones():
    with pytest.raises(ProjectConfigError, match="known: .*fraud"):
        load_project("nope")


def test_not_yaml(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: [unclosed")
    with pytest.raises(ProjectConfigError, match="not valid YAML"):
        load_project_file(path)


def test_validated_configs_are_cached_by_content_and_a_changed_file_is_validated_again(tmp_path, mlops_home):
    cache = mlops_home / "cache" / "projects"
    path = _write(tmp_path, "cached", lambda d: None)
    first = load_project_file(path)
    entries = list(cache.glob("*.json"))
    assert len(entries) == 1
    assert load_project_file(path).raw == first.raw  # served from the cache, same data

    data = yaml.safe_load(path.read_text())
    data["source"]["kind"] = "ftp"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ProjectConfigError, match="key 'source.kind'"):
        load_project_file(path)
    assert list(cache.glob("*.json")) == entries  # an invalid file is never stored

    entries[0].write_text("{not json")  # a damaged entry is ignored: validated again, rewritten
    data["source"]["kind"] = first.raw["source"]["kind"]
    path.write_text(yaml.safe_dump(data))
    assert load_project_file(path).raw == first.raw
    assert list(cache.glob("*.json")) == entries and json.loads(entries[0].read_text()) == first.raw


def test_cached_config_still_checks_its_file_name(tmp_path, mlops_home):
    path = _write(tmp_path, "other", lambda d: None)
    load_project_file(path)
    shutil.copy(path, tmp_path / "renamed.yaml")  # same bytes, same cache entry, other name
    with pytest.raises(ProjectConfigError, match="must match the file name 'renamed'"):
        load_project_file(tmp_path / "renamed.yaml")


def test_cached_config_keeps_the_yaml_key_order(mlops_home):
    """Column order is meaning (the suite's column set, the schema): a cache hit must not reorder keys."""
    from mlops_provider.config.project import load_project

    first = load_project("fraud")
    again = load_project("fraud")  # served from MLOPS_HOME/cache/projects
    assert list(first.columns) == list(again.columns)
    assert list(again.columns)[:3] == ["transaction_id", "customer_id", "event_timestamp"]
