"""The Great Expectations gate: suites derived from the project YAML (+ hand-written extras), run per batch.

The suite of project P is versioned as ``include/expectations/P.suite.json``; regenerate it with
``python -m mlops_provider.io.validation`` after changing the YAML or ``P.extras.yaml`` (a test fails
while the committed file and the generated one differ). Interval bounds are suite parameters
(``interval_start`` / ``interval_end``) filled in at run time.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from mlops_provider.config import paths
from mlops_provider.config.project import ProjectConfig

if TYPE_CHECKING:
    import pandas as pd

    from mlops_provider.io.lake import Lake

log = logging.getLogger(__name__)
# Before any GX import: GX logs ~60 INFO lines while importing ("Skipping registering function ..."),
# which would bury the validation's own lines in the task log.
logging.getLogger("great_expectations").setLevel(logging.WARNING)

# pandas dtype names a column of each declared type may arrive as after CSV/Parquet round trips.
PANDAS_TYPES: dict[str, list[str]] = {
    "string": ["object", "str", "string"],
    "category": ["object", "str", "string"],
    "float": ["float64", "float32", "int64", "int32", "Float64", "Int64"],
    "integer": ["int64", "int32", "Int64"],
    "boolean": ["bool", "boolean"],
    "timestamp": ["datetime64[ns]", "datetime64[us]", "datetime64[ms]", "datetime64[s]"],
}


def suite_path(project: ProjectConfig) -> Path:
    return paths.include_dir() / "expectations" / f"{project.name}.suite.json"


def _expectation(kind: str, meta: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
    return {"type": kind, "kwargs": kwargs, "meta": meta or {}}


def derived_expectations(project: ProjectConfig) -> list[dict[str, Any]]:
    """Expectations that follow from the YAML: schema, types, nulls, ranges, categories, uniqueness, size, time."""
    exps = [
        _expectation("expect_table_columns_to_match_set", column_set=project.input_columns, exact_match=True,
                     meta={"why": "schema: the batch has exactly the declared columns"}),
        _expectation("expect_table_row_count_to_be_between", min_value=project.validation.get("min_rows", 1),
                     max_value=project.validation.get("max_rows"), meta={"why": "an empty or truncated batch"}),
    ]
    for column, spec in project.columns.items():
        if column == project.label_column and not project.labels_in_record:
            continue  # labels arrive in their own feed: check_labels checks them at the gate of their arrival day
        exps.append(_expectation("expect_column_to_exist", column=column))
        exps.append(_expectation("expect_column_values_to_be_in_type_list", column=column,
                                 type_list=PANDAS_TYPES[spec["type"]]))
        if not spec.get("nullable", False):
            exps.append(_expectation("expect_column_values_to_not_be_null", column=column))
        elif "max_null_fraction" in spec:
            exps.append(_expectation("expect_column_values_to_not_be_null", column=column,
                                     mostly=round(1 - spec["max_null_fraction"], 6)))
        if "min" in spec or "max" in spec:
            exps.append(_expectation("expect_column_values_to_be_between", column=column,
                                     min_value=spec.get("min"), max_value=spec.get("max")))
        if "allowed" in spec:
            exps.append(_expectation("expect_column_values_to_be_in_set", column=column, value_set=spec["allowed"]))
        if spec.get("unique") or column == project.record_id:
            exps.append(_expectation("expect_column_values_to_be_unique", column=column))
    exps.append(_expectation(
        "expect_column_values_to_be_between", column=project.event_timestamp,
        min_value={"$PARAMETER": "interval_start"}, max_value={"$PARAMETER": "interval_end"},
        meta={"why": "every record belongs to the run's data interval"},
    ))
    return exps


def _examples(values: pd.Series, most: int = 3) -> list[Any]:
    return [v.item() if hasattr(v, "item") else v for v in values.drop_duplicates().head(most)]


def check_labels(project: ProjectConfig, frame: pd.DataFrame, *, interval_end: dt.datetime) -> list[str]:
    """What is wrong with a label feed's file (renamed to the labels table's names), as failure lines.

    The record id must be there and non-null; the label must have the declared type, be non-null (unless
    the label column is ``nullable``: those rows are dropped at publication), within ``min``/``max`` and
    ``allowed``; every label must be stamped (``label_timestamp``) no later than the end of its arrival
    day (a later stamp in day D's partition would hand a training set as of D a label from its future).
    """
    import pandas as pd

    from mlops_provider.domain.layout import LABEL_TIMESTAMP

    rid, label = project.record_id, project.label_column
    feed = project.label_feed
    names = {rid: ("label.feed.record_id", feed["record_id"]), label: ("label.feed.column", feed["column"]),
             LABEL_TIMESTAMP: ("label.feed.arrived_at", feed["arrived_at"])}
    missing = [f"'{names[c][1]}' ({names[c][0]})" for c in (rid, label, LABEL_TIMESTAMP) if c not in frame.columns]
    if missing:
        return [f"labels: the feed lacks column(s) {', '.join(missing)}; it has {list(frame.columns)}"]
    failures = []
    if (nulls := int(frame[rid].isna().sum())):
        failures.append(f"labels[{feed['record_id']}]: {nulls} labels without a record id")
    spec = project.columns[label]
    values = frame[label]
    present = values.dropna()
    if not spec.get("nullable", False) and (nulls := int(values.isna().sum())):
        failures.append(f"labels[{feed['column']}]: {nulls} null labels (set columns.{label}.nullable: true to "
                        "drop them instead)")
    typed = True
    if str(values.dtype) not in PANDAS_TYPES[spec["type"]] and len(present):
        typed = False
        if spec["type"] in ("integer", "float"):
            wrong = present[pd.to_numeric(present, errors="coerce").isna()]
        else:
            wrong = present
        failures.append(f"labels[{feed['column']}]: type {values.dtype}, expected {spec['type']} "
                        f"({', '.join(PANDAS_TYPES[spec['type']])}); e.g. {_examples(wrong if len(wrong) else present)}")
    if typed and "allowed" in spec and len(bad := present[~present.isin(spec["allowed"])]):
        failures.append(f"labels[{feed['column']}]: {len(bad)} values not in {spec['allowed']}, e.g. {_examples(bad)}")
    low, high = spec.get("min"), spec.get("max")
    if typed and spec["type"] in ("integer", "float") and (low is not None or high is not None):
        out = present[(present < (low if low is not None else -float("inf")))
                      | (present > (high if high is not None else float("inf")))]
        if len(out):
            failures.append(f"labels[{feed['column']}]: {len(out)} values outside [{low}, {high}], e.g. {_examples(out)}")
    stamps = frame[LABEL_TIMESTAMP]
    where = f"labels[{feed['arrived_at'] or LABEL_TIMESTAMP}]"
    if not pd.api.types.is_datetime64_any_dtype(stamps):
        failures.append(f"{where}: type {stamps.dtype}, expected timestamps; e.g. {_examples(stamps.dropna())}")
    else:
        if (nulls := int(stamps.isna().sum())):
            failures.append(f"{where}: {nulls} labels without an arrival time")
        late = stamps[stamps > pd.Timestamp(interval_end)]
        if len(late):
            failures.append(f"{where}: {len(late)} labels stamped after the end of their arrival day "
                            f"{interval_end.date()} (they belong to a later day's file), e.g. "
                            f"{[str(v) for v in _examples(late)]}")
    return failures


def extra_expectations(project: ProjectConfig) -> list[dict[str, Any]]:
    """Hand-written expectations from ``include/expectations/<extras>``, converted to GX's suite format."""
    import great_expectations.expectations as gxe

    name = project.validation.get("extras")
    if not name:
        return []
    path = paths.include_dir() / "expectations" / name
    out = []
    for i, item in enumerate(yaml.safe_load(path.read_text()) or []):
        cls = getattr(gxe, item["type"], None)
        if cls is None:
            from mlops_provider.exceptions import ProjectConfigError

            raise ProjectConfigError(f"{path}: entry {i}: unknown expectation '{item['type']}'")
        config = cls(**item["kwargs"]).configuration.to_json_dict()
        out.append(_expectation(config["type"], meta={"why": item.get("notes", "hand-written")}, **item["kwargs"]))
    return out


def build_suite_dict(project: ProjectConfig) -> dict[str, Any]:
    """The suite as GX's JSON (what is committed under include/expectations)."""
    return {
        "name": f"{project.name}.records",
        "meta": {"generated_from": f"include/projects/{project.name}.yaml",
                 "regenerate": "python -m mlops_provider.io.validation"},
        "expectations": derived_expectations(project) + extra_expectations(project),
    }


def load_suite_dict(project: ProjectConfig) -> dict[str, Any]:
    path = suite_path(project)
    return json.loads(path.read_text()) if path.exists() else build_suite_dict(project)


@dataclass
class ValidationOutcome:
    """The verdict on one batch and where its full result lives."""

    success: bool
    #: Findings: expectations that ran and found the data wrong, one line each.
    failed: list[str] = field(default_factory=list)
    #: Checks that could not run (GX raised inside the expectation): errors of the check, not findings.
    errors: list[str] = field(default_factory=list)
    statistics: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict, repr=False)
    data_docs_url: str | None = None


#: One failed expectation's line is cut to this many characters (values come from the data: raw binary, huge headers).
MAX_LINE_CHARS = 400


def _raised(res: dict[str, Any]) -> str | None:
    """The message of the exception GX caught inside the expectation, if it raised one."""
    info = res.get("exception_info") or {}
    infos = [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, dict)]
    for item in infos:
        if item.get("raised_exception"):
            message = str(item.get("exception_message", "")).strip()
            return message.splitlines()[0] if message else "an error without a message"
    return None


def _describe_failure(res: dict[str, Any]) -> tuple[str, bool]:
    """One failed expectation as a printable line, and whether it is an error of the check (it raised)."""
    from mlops_provider.domain.text import printable

    cfg = res["expectation_config"]
    kwargs = {k: v for k, v in cfg["kwargs"].items() if k not in ("batch_id",)}
    column = kwargs.pop("column", None)
    where = f"[{column}]" if column else ""
    raised = _raised(res)
    if raised is not None:
        return printable(f"{cfg['type']}{where}: the check could not run: {raised}", MAX_LINE_CHARS), True
    detail = res.get("result") or {}
    bits = []
    if "unexpected_count" in detail:
        bits.append(f"{detail['unexpected_count']} unexpected ({detail.get('unexpected_percent', 0):.2f}%)")
    if detail.get("partial_unexpected_list"):
        bits.append(f"e.g. {detail['partial_unexpected_list'][:3]}")
    if "observed_value" in detail:
        bits.append(f"observed {detail['observed_value']}")
    return printable(f"{cfg['type']}{where}: {'; '.join(bits) or 'failed'}", MAX_LINE_CHARS), False


#: Separators a header read as one column betrays (the file is not comma-separated).
_SEPARATORS = {";": "';'", "\t": "a tab", "|": "'|'"}


def likely_cause(project: ProjectConfig, columns: list[str], failed: list[str], errors: list[str]) -> str:
    """The most likely cause of a failed gate, for the first line of the message (before the list).

    A wrong delimiter (the header read as one column holding ``;`` or a tab), a byte-order mark stuck to
    the first column, missing or unexpected columns; else the first finding (or the first check error).
    """
    from mlops_provider.domain.text import printable

    expected = list(project.input_columns)
    for name in columns:
        for sep, said in _SEPARATORS.items():
            if sep in name and len([p for p in name.split(sep) if p.strip()]) > 1:
                bom = " and starts with a byte-order mark (BOM)" if "\ufeff" in name else ""
                return (f"the file is not comma-separated: its header was read as one column "
                        f"'{printable(name, 120)}' (separator {said}){bom}; export it with ',' as the separator")
    if any("\ufeff" in name for name in columns):
        name = next(n for n in columns if "\ufeff" in n)
        return (f"a byte-order mark (BOM) is stuck to column '{printable(name, 120)}'; "
                "export the file as UTF-8 without BOM")
    missing = [c for c in expected if c not in columns]
    if missing:
        extra = [c for c in columns if c not in expected]
        also = f"; it has unexpected column(s) {printable(extra, 200)}" if extra else ""
        return f"the batch lacks declared column(s) {printable(missing, 200)}{also}"
    if failed:
        return failed[0]
    if errors:
        return f"a check could not run (an error of the check, not of the data): {errors[0]}"
    return "unknown (see the full result)"


def data_docs_dir(project: ProjectConfig, run_name: str) -> Path:
    """Where one validation run's Data Docs site is built: ``MLOPS_HOME/gx/data_docs/<project>/<run>/``."""
    from mlops_provider.domain.layout import safe_run_id

    return paths.gx_dir() / "data_docs" / project.name / safe_run_id(run_name)


#: Where a project's Data Docs live in the report store (served by the report view of the Airflow plugin).
DATA_DOCS_PREFIX = "data_docs"
#: The site's static files a validation page refers to by relative path (the rest comes from CDNs).
_DATA_DOCS_STATIC = ("static/styles", "static/images/favicon.ico")


def publish_data_docs(project: ProjectConfig, reports: Lake, run_name: str, page_url: str) -> str:
    """Copy this run's validation page (and the static files it refers to) from its local Data Docs site
    (:func:`data_docs_dir`) into the report store under ``<project>/data_docs/<run>/``, in the site's layout
    so its relative links hold; return the page's URI in the store.

    GX builds Data Docs under the worker's MLOPS_HOME, which another worker or the Airflow UI cannot
    read; from the report store (local or S3) the report view serves them to any browser.
    """
    from urllib.parse import unquote, urlsplit

    from mlops_provider.domain.layout import safe_run_id

    site = data_docs_dir(project, run_name)
    page = Path(unquote(urlsplit(page_url).path))
    prefix = f"{project.name}/{DATA_DOCS_PREFIX}/{safe_run_id(run_name)}"
    for static in _DATA_DOCS_STATIC:
        local = site / static
        for path in sorted(local.rglob("*") if local.is_dir() else [local]):
            if path.is_file():
                reports.write_bytes(f"{prefix}/{path.relative_to(site).as_posix()}", path.read_bytes())
    uri = reports.write_bytes(f"{prefix}/{page.relative_to(site).as_posix()}", page.read_bytes())
    log.info("Data Docs page of this validation: %s", uri)
    return uri


def _skip_decimal_scan_of_typed_arrays() -> None:
    """Let GX's pandas ``column.mean``/``sum``/``standard_deviation`` skip their Decimal scan on typed columns.

    Before aggregating, GX 1.x looks for ``decimal.Decimal`` values one Python object at a time
    (``great_expectations.util.does_ndarray_contain_decimal_dtype``): 5.0 s of an 11.1 s whole-batch check
    of 10M records, holding the GIL, for a float64 column that cannot hold a Decimal. A NumPy array of
    any dtype but ``object`` answers False at once; object arrays (where Decimals live) are still scanned,
    so the conversion GX does for them is unchanged. Installed once per process, idempotent.
    """
    from great_expectations import util as gx_util

    scan = gx_util.does_ndarray_contain_decimal_dtype
    if getattr(scan, "skips_typed_arrays", False):
        return

    def contains_decimal(data: Any) -> bool:
        if getattr(getattr(data, "dtype", None), "kind", "O") != "O":  # numbers, dates, bools: no object
            return False
        return scan(data=data)

    contains_decimal.skips_typed_arrays = True  # type: ignore[attr-defined]
    gx_util.does_ndarray_contain_decimal_dtype = contains_decimal


def _run_suite(project: ProjectConfig, frame: pd.DataFrame, expectations: list[dict[str, Any]], *, interval_start,
               interval_end, run_name: str, reports: Lake | None) -> tuple[dict[str, Any], str | None]:
    """Run ``expectations`` (suite JSON entries) on ``frame`` in an ephemeral GX context; build the run's Data Docs.

    Returns GX's validation result as JSON and the URI of the run's Data Docs page (published to
    ``reports`` when given, else the local page).
    """
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.execution_engine import pandas_execution_engine
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    # GX fingerprints every pandas batch whose memory_usage() (text columns counted as 8-byte pointers) is
    # under HASH_THRESHOLD by hashing every value into its batch markers. The fingerprint is never read here
    # (a run is named by run_name) and cost a third of the sharded gate on 2M records (16.2 s -> 11.1 s). Off.
    pandas_execution_engine.HASH_THRESHOLD = 0
    _skip_decimal_scan_of_typed_arrays()
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    docs_dir = data_docs_dir(project, run_name)
    context.add_data_docs_site(site_name="mlops", site_config={
        "class_name": "SiteBuilder",
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    })
    asset = context.data_sources.add_pandas("mlops").add_dataframe_asset(f"{project.name}_records")
    batch_def = asset.add_batch_definition_whole_dataframe("batch")
    suite_dict = load_suite_dict(project)
    configs = [ExpectationConfiguration(type=e["type"], kwargs=e["kwargs"], meta=e.get("meta", {})).to_domain_obj()
               for e in expectations]
    suite = context.suites.add(
        gx.ExpectationSuite(name=suite_dict["name"], meta=suite_dict.get("meta", {}), expectations=configs)
    )
    definition = context.validation_definitions.add(gx.ValidationDefinition(name=suite.name, data=batch_def,
                                                                            suite=suite))
    checkpoint = context.checkpoints.add(gx.Checkpoint(
        name=suite.name, validation_definitions=[definition],
        actions=[gx.checkpoint.UpdateDataDocsAction(name="update_data_docs", site_names=["mlops"])],
        result_format={"result_format": "SUMMARY"},
    ))
    result = checkpoint.run(
        batch_parameters={"dataframe": frame},
        expectation_parameters={"interval_start": interval_start, "interval_end": interval_end},
        run_id=gx.RunIdentifier(run_name=run_name),
    )
    (identifier, run_result), = result.run_results.items()
    docs = context.get_docs_sites_urls(resource_identifier=identifier, site_name="mlops")
    docs_url = docs[0]["site_url"] if docs else None
    if docs_url and reports is not None:
        docs_url = publish_data_docs(project, reports, run_name, docs_url)
    return run_result.to_json_dict(), docs_url


def outcome_of(result: dict[str, Any], data_docs_url: str | None) -> ValidationOutcome:
    """The verdict of a validation result (GX's JSON, or :func:`merge_results`' of a batch checked in shards)."""
    described = [_describe_failure(r) for r in result["results"] if not r["success"]]
    return ValidationOutcome(
        success=bool(result["success"]), failed=[line for line, error in described if not error],
        errors=[line for line, error in described if error], statistics=result.get("statistics", {}),
        result=result, data_docs_url=data_docs_url,
    )


def validate_frame(project: ProjectConfig, frame: pd.DataFrame, *, interval_start, interval_end,
                   run_name: str, reports: Lake | None = None,
                   expectations: list[dict[str, Any]] | None = None) -> ValidationOutcome:
    """Run the project's suite (or the given part of it) on ``frame`` and build this run's Data Docs
    (:func:`data_docs_dir`).

    With ``reports`` (the report store) the run's Data Docs page is published there too
    (:func:`publish_data_docs`) and ``data_docs_url`` is its URI in the store; without, the local page's.

    The GX context is ephemeral (suite, batch definition, checkpoint and result live in memory): a
    file-mode context shared by concurrent validations (two workers, two days of one backfill) made one
    of them fail with GX's ``CheckpointRelatedResourcesFreshnessError`` ("ValidationDefinition ... has
    changed since it has last been saved"). Nothing but the run's own Data Docs site touches the disk.
    """
    if expectations is None:
        expectations = load_suite_dict(project)["expectations"]
    result, docs_url = _run_suite(project, frame, expectations, interval_start=interval_start,
                                  interval_end=interval_end, run_name=run_name, reports=reports)
    return outcome_of(result, docs_url)


# -- a batch checked in shards ------------------------------------------------------------------------
#
# A large batch is validated by several tasks, each on whole row groups of the staged file. A shard can
# check alone what every shard sees whole (the batch's columns) and what is decided value by value (a
# value outside its set, a null where none may be), as long as no ``mostly`` threshold applies to the
# whole batch: the batch passes such an expectation when every shard passes it, and its unexpected
# values add up. The rest (row counts, uniqueness, means, quantiles, ``mostly``, order) needs the
# whole batch and runs once, in the gate, on only the columns it names.

#: Table-shape expectations: every shard has the batch's columns.
_SCHEMA_EXPECTATIONS = frozenset({
    "expect_column_to_exist", "expect_column_type_to_be", "expect_table_column_count_to_equal",
    "expect_table_column_count_to_be_between", "expect_table_columns_to_match_set",
    "expect_table_columns_to_match_ordered_list",
})
#: Map expectations whose per-value verdict depends on the other values (the whole column's).
_WHOLE_COLUMN_MAP_METRICS = frozenset({
    "column_values.unique", "compound_columns.unique", "column_values.increasing", "column_values.decreasing",
    "column_values.z_score.under_threshold", "column_values.not_outliers",
})


def checked_per_shard(expectation: dict[str, Any]) -> bool:
    """Whether a shard of the batch can check ``expectation`` (a suite JSON entry) on its own rows."""
    from great_expectations.expectations.expectation import (
        ColumnMapExpectation,
        ColumnPairMapExpectation,
        MulticolumnMapExpectation,
    )
    from great_expectations.expectations.registry import get_expectation_impl

    kind, kwargs = expectation["type"], expectation.get("kwargs", {})
    if kind in _SCHEMA_EXPECTATIONS:
        return True
    impl = get_expectation_impl(kind)
    if not issubclass(impl, (ColumnMapExpectation, ColumnPairMapExpectation, MulticolumnMapExpectation)):
        return False
    metric = getattr(impl, "map_metric", None)
    mostly = kwargs.get("mostly")
    return metric is not None and metric not in _WHOLE_COLUMN_MAP_METRICS and (mostly is None or mostly >= 1)


def split_suite(project: ProjectConfig) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The suite's expectations a shard checks alone, and those the whole batch needs (suite order kept)."""
    expectations = load_suite_dict(project)["expectations"]
    return ([e for e in expectations if checked_per_shard(e)], [e for e in expectations if not checked_per_shard(e)])


def columns_named(expectations: list[dict[str, Any]]) -> list[str]:
    """The columns ``expectations`` name (``column``, ``column_A``/``column_B``, ``column_list``), in order."""
    named: list[str] = []
    for e in expectations:
        kwargs = e.get("kwargs", {})
        for value in (kwargs.get("column"), kwargs.get("column_A"), kwargs.get("column_B"),
                      *(kwargs.get("column_list") or [])):
            if value is not None and value not in named:
                named.append(value)
    return named


def _merge_one(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One expectation's result over the whole batch from its results on each shard (same expectation)."""
    merged = dict(results[0])
    merged["success"] = all(r["success"] for r in results)
    raised = next((r for r in results if _raised(r) is not None), None)
    if raised is not None:
        merged["exception_info"] = raised["exception_info"]
    details = [r.get("result") or {} for r in results]
    if not any("element_count" in d for d in details):
        # A table-shape check: every shard observed the same columns; show a failing shard's observation.
        merged["result"] = next((r.get("result") for r in results if not r["success"]), details[0])
        return merged
    out = dict(details[0])
    for key in ("element_count", "unexpected_count", "missing_count"):
        if any(key in d for d in details):
            out[key] = sum(int(d.get(key) or 0) for d in details)
    total, missing, unexpected = out.get("element_count", 0), out.get("missing_count", 0), out.get("unexpected_count", 0)
    nonmissing = total - missing
    if "missing_count" in out:
        out["missing_percent"] = 100.0 * missing / total if total else None
        out["unexpected_percent_total"] = 100.0 * unexpected / total if total else None
        out["unexpected_percent_nonmissing"] = 100.0 * unexpected / nonmissing if nonmissing else None
    out["unexpected_percent"] = (100.0 * unexpected / (nonmissing if "missing_count" in out else total)
                                 if (nonmissing if "missing_count" in out else total) else None)
    out["partial_unexpected_list"] = [v for d in details for v in d.get("partial_unexpected_list") or []][:20]
    counts: dict[str, dict[str, Any]] = {}
    for d in details:
        for item in d.get("partial_unexpected_counts") or []:
            key = json.dumps(item["value"], default=str, sort_keys=True)
            counts.setdefault(key, {"value": item["value"], "count": 0})["count"] += int(item["count"])
    out["partial_unexpected_counts"] = sorted(counts.values(), key=lambda c: -c["count"])[:20]
    out.pop("partial_unexpected_index_list", None)  # row positions within a shard, not the batch
    merged["result"] = out
    return merged


def merge_results(per_shard: list[dict[str, Any]], whole_batch: dict[str, Any] | None) -> dict[str, Any]:
    """One validation result for a batch checked in shards: each per-shard expectation merged over the
    shards (:func:`_merge_one`), then the whole-batch run's results. Shape and statistics as GX's;
    ``meta.shards`` counts the shards.
    """
    results = [_merge_one([shard["results"][i] for shard in per_shard])
               for i in range(len(per_shard[0]["results"]))] if per_shard else []
    results += list((whole_batch or {}).get("results", []))
    passed = sum(1 for r in results if r["success"])
    base = whole_batch or per_shard[0]
    return {
        "success": passed == len(results), "results": results, "suite_name": base.get("suite_name"),
        "suite_parameters": base.get("suite_parameters", {}),
        "statistics": {"evaluated_expectations": len(results), "successful_expectations": passed,
                       "unsuccessful_expectations": len(results) - passed,
                       "success_percent": 100.0 * passed / len(results) if results else None},
        "meta": {**base.get("meta", {}), "shards": len(per_shard)},
    }


def write_suites() -> list[Path]:
    """Regenerate every project's committed suite file."""
    from mlops_provider.config.project import load_projects

    written = []
    for project in load_projects():
        path = suite_path(project)
        path.write_text(json.dumps(build_suite_dict(project), indent=2, sort_keys=False) + "\n")
        written.append(path)
    return written


if __name__ == "__main__":
    for p in write_suites():
        print(f"wrote {p}")
