"""Load and validate the declarative ML project files in ``include/projects``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from mlops_provider.core import state
from mlops_provider.exceptions import ProjectConfigError

_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@cache
def _schema() -> dict[str, Any]:
    return json.loads(resources.files("mlops_provider").joinpath("schemas/project.schema.json").read_text())


def _apply_defaults(schema: dict[str, Any], data: dict[str, Any]) -> None:
    for key, sub in schema.get("properties", {}).items():
        if key not in data and "default" in sub:
            data[key] = sub["default"]
        if isinstance(data.get(key), dict) and sub.get("type") == "object":
            _apply_defaults(sub, data[key])


@dataclass(frozen=True)
class ProjectConfig:
    """One ML project: its source, schema, features, model, gates and alert recipients."""

    path: Path
    raw: dict[str, Any] = field(repr=False)

    # The keys every stage needs, lifted out of ``raw`` for readability.
    @property
    def name(self) -> str:
        return self.raw["name"]

    @property
    def description(self) -> str:
        return self.raw["description"]

    @property
    def owner(self) -> str:
        return self.raw["owner"]

    @property
    def tags(self) -> list[str]:
        return list(self.raw.get("tags", []))

    @property
    def start_date(self) -> str:
        return self.raw["start_date"]

    @property
    def schedule(self) -> str:
        return self.raw.get("schedule", "@daily")

    @property
    def source(self) -> dict[str, Any]:
        return self.raw["source"]

    @property
    def entity_name(self) -> str:
        return self.raw["entity"]["name"]

    @property
    def entity_key(self) -> str:
        return self.raw["entity"]["key"]

    @property
    def record_id(self) -> str:
        return self.raw["record_id"]

    @property
    def event_timestamp(self) -> str:
        return self.raw["event_timestamp"]

    @property
    def label_column(self) -> str:
        return self.raw["label"]["column"]

    @property
    def label_delay_days(self) -> int:
        return self.raw["label"]["delay_days"]

    @property
    def columns(self) -> dict[str, dict[str, Any]]:
        return self.raw["columns"]

    @property
    def validation(self) -> dict[str, Any]:
        return self.raw.get("validation", {})

    @property
    def features(self) -> dict[str, Any]:
        return self.raw["features"]

    @property
    def model(self) -> dict[str, Any]:
        return self.raw["model"]

    @property
    def model_name(self) -> str:
        return self.raw["model"]["name"]

    @property
    def promotion(self) -> dict[str, Any]:
        return self.raw["promotion"]

    @property
    def monitoring(self) -> dict[str, Any]:
        return self.raw.get("monitoring", {})

    @property
    def alerts(self) -> dict[str, Any]:
        return self.raw["alerts"]

    @property
    def input_columns(self) -> list[str]:
        """Columns a batch carries at ingestion (the label arrives later, in its own table)."""
        return [c for c in self.columns if c != self.label_column]

    def dag_id(self, stage: str) -> str:
        return f"{self.name}__{stage}"

    def config_hash(self) -> str:
        import hashlib

        return hashlib.sha256(json.dumps(self.raw, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _check_references(path: Path, data: dict[str, Any]) -> None:
    columns = data["columns"]

    def must_be_column(key: str, value: str) -> None:
        if value not in columns:
            raise ProjectConfigError(f"{path}: key '{key}': column '{value}' is not declared under 'columns'")

    must_be_column("entity.key", data["entity"]["key"])
    must_be_column("record_id", data["record_id"])
    must_be_column("event_timestamp", data["event_timestamp"])
    must_be_column("label.column", data["label"]["column"])
    if columns[data["event_timestamp"]]["type"] != "timestamp":
        raise ProjectConfigError(f"{path}: key 'columns.{data['event_timestamp']}.type': must be 'timestamp'")
    for key in ("amount_column", "category_column", "home_column"):
        if key in data["features"]:
            must_be_column(f"features.{key}", data["features"][key])
    for col in data["features"].get("transaction_features", []):
        must_be_column("features.transaction_features", col)
    source = data["source"]
    needed = {"landing": ["path"], "postgres": ["table", "conn_id"], "s3": ["bucket", "prefix"]}[source["kind"]]
    for key in needed:
        if key not in source:
            raise ProjectConfigError(f"{path}: key 'source.{key}': required when source.kind is '{source['kind']}'")
    val = data.get("validation", {})
    if val.get("min_rows") and val.get("max_rows") and val["min_rows"] > val["max_rows"]:
        raise ProjectConfigError(f"{path}: key 'validation.min_rows': greater than validation.max_rows")


def load_project_file(path: str | Path) -> ProjectConfig:
    """Parse and validate one project YAML; errors name the file, the key and the problem."""
    from jsonschema import Draft202012Validator

    path = Path(path)
    try:
        # libyaml's loader: the pure-Python one costs ~25 ms per project on every DAG file parse.
        data = yaml.load(path.read_text(), Loader=_YAML_LOADER)
    except OSError as exc:
        raise ProjectConfigError(f"{path}: cannot read project file: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ProjectConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ProjectConfigError(f"{path}: top level must be a mapping of keys, got {type(data).__name__}")
    # YAML turns unquoted dates into date objects; the schema wants ISO strings.
    if "start_date" in data and not isinstance(data["start_date"], str):
        data["start_date"] = str(data["start_date"])
    errors = sorted(Draft202012Validator(_schema()).iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for err in errors[:10]:
            key = ".".join(str(p) for p in err.absolute_path) or "<top level>"
            lines.append(f"{path}: key '{key}': {err.message}")
        raise ProjectConfigError("invalid project config:\n" + "\n".join(lines))
    _apply_defaults(_schema(), data)
    _check_references(path, data)
    stem = path.stem.removesuffix(".project")
    if stem != data["name"]:
        raise ProjectConfigError(f"{path}: key 'name': '{data['name']}' must match the file name '{stem}'")
    return ProjectConfig(path=path, raw=data)


def load_projects(directory: str | Path | None = None) -> list[ProjectConfig]:
    """Every ``*.yaml`` project in the projects directory, sorted by name."""
    directory = Path(directory) if directory else state.projects_dir()
    return [load_project_file(p) for p in sorted(directory.glob("*.yaml"))]


def load_project(name: str, directory: str | Path | None = None) -> ProjectConfig:
    directory = Path(directory) if directory else state.projects_dir()
    path = directory / f"{name}.yaml"
    if not path.exists():
        known = ", ".join(p.stem for p in sorted(directory.glob("*.yaml"))) or "none"
        raise ProjectConfigError(f"{path}: no such project '{name}' (known: {known})")
    return load_project_file(path)
