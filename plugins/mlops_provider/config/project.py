"""Load and validate the declarative ML project files in ``include/projects``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache, cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from mlops_provider.config import paths
from mlops_provider.config.features import FeatureSpec, check_features, parse_features
from mlops_provider.config.tasks import check_task, fill_task
from mlops_provider.exceptions import ProjectConfigError

_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@cache
def _schema() -> dict[str, Any]:
    return json.loads(resources.files("mlops_provider").joinpath("config/project.schema.json").read_text())


def bounds(key: str) -> dict[str, Any]:
    """``minimum`` / ``maximum`` of a dotted schema key (``"model.hpo_trials"``): DAG Params take theirs from here."""
    node: dict[str, Any] = _schema()
    for part in key.split("."):
        node = node["properties"][part]
    return {k: node[k] for k in ("minimum", "maximum") if k in node}


def schema_default(key: str) -> Any:
    """The ``default`` of a dotted schema key (``"source.null_values"``), for code that runs without a project."""
    import copy

    node: dict[str, Any] = _schema()
    for part in key.split("."):
        node = node["properties"][part]
    return copy.deepcopy(node["default"])


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
        return self.raw["schedule"]

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
    def labels_in_record(self) -> bool:
        """``label.from: record``: the label is a column of the record, held back ``delay_days`` after its event."""
        return self.raw["label"].get("from", "feed") == "record"

    @property
    def label_feed(self) -> dict[str, Any]:
        """The label feed's column names: ``record_id``, ``column`` (the label), ``arrived_at`` (may be None)."""
        return self.raw["label"]["feed"]

    @property
    def null_values(self) -> list[str]:
        """Values that become nulls at extraction (``source.null_values``)."""
        return list(self.source["null_values"])

    @property
    def columns(self) -> dict[str, dict[str, Any]]:
        return self.raw["columns"]

    @property
    def validation(self) -> dict[str, Any]:
        return self.raw.get("validation", {})

    @property
    def runs(self) -> dict[str, Any]:
        """Retries, retry delay, timeouts of the project's tasks and DAG runs, the wait for a day's data (``runs``)."""
        return self.raw["runs"]

    @property
    def features(self) -> dict[str, Any]:
        return self.raw["features"]

    @property
    def entity_keys(self) -> list[str]:
        """The key column of every entity (the main one first)."""
        return [e.key for e in self.feature_spec.entities]

    @cached_property
    def feature_spec(self) -> FeatureSpec:
        """The declared features, typed: entities, aggregations (with derived names), record features."""
        return parse_features(self.raw)

    @property
    def model(self) -> dict[str, Any]:
        return self.raw["model"]

    @property
    def model_name(self) -> str:
        return self.raw["model"]["name"]

    @property
    def task(self) -> str:
        """``model.task``: binary, multiclass or regression (config/tasks.py)."""
        return self.raw["model"].get("task", "binary")

    @property
    def estimator(self) -> str:
        """``model.estimator``: the scikit-learn estimator family the search tunes."""
        return self.raw["model"].get("estimator", "hist_gradient_boosting")

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
        """Columns a batch carries at ingestion (the label too with ``label.from: record``, else it arrives later)."""
        return [c for c in self.columns if self.labels_in_record or c != self.label_column]

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
    for key, problem in check_features(data):
        raise ProjectConfigError(f"{path}: key '{key}': {problem}")
    monitored = data.get("monitoring", {}).get("features") or []
    if monitored:
        spec = parse_features(data)
        names = [a.name for a in spec.aggregations] + spec.record_feature_names()
        unknown = [c for c in monitored if c not in names]
        if unknown:
            raise ProjectConfigError(f"{path}: key 'monitoring.features': {unknown} are not model features "
                                     f"(choose from {names})")
    for key, column in (("entity.key", data["entity"]["key"]), ("record_id", data["record_id"])):
        if columns[column].get("nullable"):
            raise ProjectConfigError(f"{path}: key 'columns.{column}.nullable': the {key} column can never be "
                                     "null (a record without it cannot be joined or aggregated); remove nullable")
    val = data.get("validation", {})
    if val.get("min_rows") and val.get("max_rows") and val["min_rows"] > val["max_rows"]:
        raise ProjectConfigError(f"{path}: key 'validation.min_rows': greater than validation.max_rows")


FILE_KINDS = ("landing", "s3")
_SOURCE_KEYS = {"landing": {"path"}, "postgres": {"table", "conn_id", "labels_table", "statement_timeout_seconds",
                                                  "read_streams"},
                "s3": {"bucket", "prefix", "conn_id"}}
_FILE_KEYS = {"format", "pattern", "labels_pattern", "max_file_bytes"}


def check_pattern(pattern: str) -> str | None:
    """What is wrong with a file pattern (``source.pattern``), or ``None``; used by config checks and tests."""
    import datetime as dt
    import string

    try:
        fields = [(name, spec, conv) for _, name, spec, conv in string.Formatter().parse(pattern) if name is not None]
    except ValueError as exc:
        return f"not a valid pattern ({exc}); write literal braces as {{{{ and }}}}"
    unknown = sorted({name for name, _, _ in fields if name not in ("date", "format")})
    if unknown:
        return f"unknown placeholder(s) {unknown}: only {{date}} (or {{date:%Y%m%d}} etc.) and {{format}} exist"
    if not any(name == "date" for name, _, _ in fields):
        return "has no {date} placeholder, so every day would read the same file"
    if any(conv for _, _, conv in fields) or any(spec for name, spec, _ in fields if name == "format"):
        return "placeholders take no conversion (!r) and {format} takes no format spec"
    try:
        formatted = pattern.format(date=dt.date(2000, 11, 22), format="csv")
    except (ValueError, TypeError) as exc:
        return f"cannot be formatted with a date: {exc}"
    if formatted.startswith("/") or ".." in formatted.split("/") or formatted.endswith("/"):
        return "must be a relative file path below the source (no leading /, no .., not a directory)"
    return None


def _check_source(path: Path, data: dict[str, Any]) -> None:
    """Checks of ``source`` and ``label`` on the file as written (before schema defaults are filled in)."""
    source, label = data["source"], data["label"]
    kind = source["kind"]
    needed = {"landing": ["path"], "postgres": ["table", "conn_id"], "s3": ["bucket", "prefix"]}[kind]
    for key in needed:
        if key not in source:
            raise ProjectConfigError(f"{path}: key 'source.{key}': required when source.kind is '{kind}'")
    allowed = _SOURCE_KEYS[kind] | {"kind", "null_values"} | (_FILE_KEYS if kind in FILE_KINDS else set())
    for key in source:
        if key not in allowed:
            kinds = [k for k, keys in _SOURCE_KEYS.items() if key in keys] or list(FILE_KINDS)
            raise ProjectConfigError(f"{path}: key 'source.{key}': not used by a {kind} source "
                                     f"(only by {' and '.join(kinds)}); remove it")
    for key in ("pattern", "labels_pattern"):
        if key in source and (problem := check_pattern(source[key])):
            raise ProjectConfigError(f"{path}: key 'source.{key}': '{source[key]}' {problem}")
    from_record = label.get("from", "feed") == "record"
    if from_record:
        for key, where in (("feed", "label.feed"), ("labels_table", "source.labels_table"),
                           ("labels_pattern", "source.labels_pattern")):
            if key in label or key in source:
                raise ProjectConfigError(f"{path}: key '{where}': label.from is 'record' (the label is a column "
                                         "of the record), so there is no label feed to describe; remove it")
    elif kind == "postgres" and "arrived_at" in label.get("feed", {}) and label["feed"]["arrived_at"] is None:
        raise ProjectConfigError(f"{path}: key 'label.feed.arrived_at': a postgres label feed is read by its "
                                 "arrival timestamp column; name it")


def _fill_source_and_label(path: Path, data: dict[str, Any]) -> None:
    """Defaults that depend on other keys (the label feed's names are the record's own); file keys only for files."""
    source, label = data["source"], data["label"]
    if source["kind"] not in FILE_KINDS:
        for key in _FILE_KEYS:
            source.pop(key, None)
    if source["kind"] != "postgres":
        for key in ("statement_timeout_seconds", "read_streams"):  # defaults of the postgres kind only
            source.pop(key, None)
    if label["from"] == "record":
        source.pop("labels_pattern", None)
        return
    feed = label.setdefault("feed", {})
    feed.setdefault("record_id", data["record_id"])
    feed.setdefault("column", label["column"])
    feed.setdefault("arrived_at", schema_default("label.feed.arrived_at"))
    if "pattern" in source and source["pattern"] == source["labels_pattern"]:
        raise ProjectConfigError(f"{path}: key 'source.labels_pattern': '{source['labels_pattern']}' is also "
                                 "source.pattern, so the records would be read as labels; give the feed its own files")


def _validate(path: Path, text: bytes) -> dict[str, Any]:
    """The project's data, parsed, checked against the JSON Schema and its cross-references, defaults filled."""
    from jsonschema import Draft202012Validator

    try:
        # libyaml's loader: the pure-Python one costs ~25 ms per project on every DAG file parse.
        data = yaml.load(text, Loader=_YAML_LOADER)
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
    _check_source(path, data)
    for key, problem in check_task(data):
        raise ProjectConfigError(f"{path}: key '{key}': {problem}")
    _apply_defaults(_schema(), data)
    _fill_source_and_label(path, data)
    fill_task(data)
    _check_references(path, data)
    _check_runs(path, data)
    return data


def _check_runs(path: Path, data: dict[str, Any]) -> None:
    """An ingest run waits for its day up to ``runs.source_wait_hours``: the DAG run's own timeout must outlast it."""
    runs = data["runs"]
    if runs["source_wait_hours"] * 60 >= runs["dagrun_timeout_minutes"]:
        raise ProjectConfigError(
            f"{path}: key 'runs.source_wait_hours': {runs['source_wait_hours']:g} h of waiting for a day's data does "
            f"not fit in runs.dagrun_timeout_minutes ({runs['dagrun_timeout_minutes']:g} min): the run would time out "
            "while waiting. Lower source_wait_hours or raise dagrun_timeout_minutes (leave time for the extract and "
            "validation after the wait)")


# -- validated-config cache ----------------------------------------------------------------------------
# Every DAG file parse (a fresh interpreter each time) loads every project: parsing and validating 10
# YAMLs costs ~15 ms CPU per DAG file. A valid project's data is therefore kept as JSON under
# MLOPS_HOME/cache/projects/<key>.json, where the key is a SHA-256 over everything that decides the
# result: the file's bytes, the JSON Schema, this module's source, and the YAML and jsonschema
# installs. A changed file (or schema, or validation code) has a new key and is validated again;
# invalid files are never stored. Entries are never updated in place, so concurrent parsers cannot see
# a half-written one (writes go through a temporary file and os.replace). Reading, writing or
# decoding problems fall back to validating. Anyone who can write to MLOPS_HOME can already change
# the platform's state; delete the directory at any time.
_CACHE_FORMAT = "1"


@cache
def _validation_fingerprint() -> bytes | None:
    """Digest of what, besides the file itself, decides a validation result (``None``: do not cache)."""
    import hashlib

    import jsonschema

    try:
        parts = [_CACHE_FORMAT.encode(), Path(__file__).read_bytes(), (Path(__file__).parent / "features.py").read_bytes(),
                 (Path(__file__).parent / "tasks.py").read_bytes(),
                 resources.files("mlops_provider").joinpath("config/project.schema.json").read_bytes(),
                 f"yaml {yaml.__version__} {_YAML_LOADER.__name__}".encode()]
        # jsonschema has no cheap version attribute (importlib.metadata costs ~1 ms): its install's stat will do.
        installed = Path(jsonschema.__file__).stat()
    except OSError:  # e.g. an install without sources: validate every time
        return None
    parts.append(f"jsonschema {installed.st_mtime_ns} {installed.st_size}".encode())
    return hashlib.sha256(b"\0".join(parts)).digest()


def _cache_path(text: bytes) -> Path | None:
    import hashlib

    fingerprint = _validation_fingerprint()
    if fingerprint is None:
        return None
    key = hashlib.sha256(fingerprint + text).hexdigest()
    return paths.mlops_home() / "cache" / "projects" / f"{key}.json"


def _cache_read(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and "name" in data else None


def _cache_write(path: Path | None, data: dict[str, Any]) -> None:
    import os
    import tempfile

    if path is None:
        return
    try:
        # Key order is meaning (column order of the suite and the schema): never sort.
        text = json.dumps(data)
    except (TypeError, ValueError):  # a value JSON cannot hold (a YAML date, a set): not cached
        return
    if json.loads(text) != data:  # e.g. non-string keys or NaN would not come back the same
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError:  # a read-only MLOPS_HOME only costs the speed-up
        return


def load_project_file(path: str | Path) -> ProjectConfig:
    """Parse and validate one project YAML; errors name the file, the key and the problem.

    A file whose exact bytes were validated before (same schema and code) is read from the cache of
    validated configs under ``MLOPS_HOME/cache/projects`` instead (see ``_validation_fingerprint``).
    """
    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ProjectConfigError(f"{path}: cannot read project file: {exc}") from exc
    cached = _cache_path(text)
    data = _cache_read(cached)
    if data is None:
        data = _validate(path, text)
        _cache_write(cached, data)
    stem = path.stem.removesuffix(".project")
    if stem != data["name"]:
        raise ProjectConfigError(f"{path}: key 'name': '{data['name']}' must match the file name '{stem}'")
    return ProjectConfig(path=path, raw=data)


def load_projects(directory: str | Path | None = None) -> list[ProjectConfig]:
    """Every ``*.yaml`` project in the projects directory, sorted by name."""
    directory = Path(directory) if directory else paths.projects_dir()
    return [load_project_file(p) for p in sorted(directory.glob("*.yaml"))]


def load_project(name: str, directory: str | Path | None = None) -> ProjectConfig:
    directory = Path(directory) if directory else paths.projects_dir()
    path = directory / f"{name}.yaml"
    if not path.exists():
        known = ", ".join(p.stem for p in sorted(directory.glob("*.yaml"))) or "none"
        raise ProjectConfigError(f"{path}: no such project '{name}' (known: {known})")
    return load_project_file(path)
