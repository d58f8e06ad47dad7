"""The monitor stage: a day's drift, data quality and (labels permitting) performance vs the champion's reference.

The report is saved as HTML, Evidently JSON and a verdict JSON in the report store and logged to the
MLflow run of the model version that scored the day.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_provider.domain import drift, scoring
from mlops_provider.domain.layout import as_date, days, labels_table, predictions_table
from mlops_provider.domain.metrics import as_monitoring_reference
from mlops_provider.exceptions import MlopsError, ModelNotFoundError
from mlops_provider.io import model_store
from mlops_provider.stages.training_set import monitored_features

if TYPE_CHECKING:
    import pandas as pd

    from mlops_provider.config.project import ProjectConfig
    from mlops_provider.io.lake import Lake

log = logging.getLogger(__name__)

REPORT_FILES = (("html", "report.html"), ("json", "evidently_snapshot.json"), ("verdict", "verdict.json"))


def _scored(project: ProjectConfig, lake: Lake, first: dt.date, day: dt.date) -> pd.DataFrame:
    """The predictions performance needs of ``[first, day]``: ids and the task's prediction columns (a
    multiclass model's class and the probability columns each day's partition has)."""
    import pandas as pd
    import pyarrow.parquet as pq

    rid, table = project.record_id, predictions_table(project)
    if project.task != "multiclass":
        return lake.read_range(table, first, day, columns=[rid, scoring.SCORE])
    parts = []
    for d in days(first, day):
        if lake.exists(table, d):
            names = pq.read_schema(lake.partition_path(table, d), filesystem=lake.fs).names
            parts.append(lake.read(table, d, columns=[rid, scoring.PREDICTION, *scoring.proba_columns(names)]))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=[rid, scoring.PREDICTION])


def labelled_predictions(project: ProjectConfig, lake: Lake, day: dt.date) -> pd.DataFrame | None:
    """Predictions of earlier days joined with the labels that arrived on ``day`` (``None``: none arrived)."""
    rid, label = project.record_id, project.label_column
    if not lake.exists(labels_table(project), day):
        return None
    labels = lake.read(labels_table(project), day, columns=[rid, label])
    first = day - dt.timedelta(days=project.label_delay_days + 1)
    # Only what performance needs: a large day's predictions carry every model input as well.
    scored = _scored(project, lake, first, day)
    if scored.empty:
        return None
    labelled = scored.merge(labels.astype({rid: str}), on=rid, how="inner")
    return labelled if len(labelled) else None


# Evidently's standalone HTML embeds the report data as one JSON literal per line inside a <script>:
# ``    var <dashboard id> = {...};`` and ``    var additional_graphs_<id> = {...};``.
_DATA_LINE = re.compile(r"^(\s*var [A-Za-z_$][\w$]* = )([\[{].*)(;\s*)$", re.M)


def script_safe_html(html: str) -> str:
    """Evidently's report with every ``<`` of its embedded data written ``\\u003c``.

    The data are JSON literals inside a ``<script>``; a category value such as ``</script><img ...>``
    would end the script and inject markup. ``\\u003c`` is the same character to JSON and JavaScript
    (the report reads back identically) but never starts a tag. Only the two data lines, which come
    before the embedded library, are rewritten.
    """
    return _DATA_LINE.sub(lambda m: m[1] + m[2].replace("<", "\\u003c") + m[3], html, count=2)


def save_report(result: drift.MonitoringResult, reports: Lake, path_prefix: str) -> dict[str, str]:
    """Write the report as ``<prefix>.html``, the Evidently snapshot as ``<prefix>.json`` (loadable with
    ``evidently.core.report.Snapshot.load``) and the verdict as ``<prefix>.verdict.json``; return URIs."""
    prefix = path_prefix.strip("/")
    html = script_safe_html(result.snapshot.get_html_str(as_iframe=False)).encode("utf-8")
    uris = {
        "html": reports.write_bytes(f"{prefix}.html", html),
        "json": reports.write_bytes(f"{prefix}.json", result.snapshot.dumps().encode("utf-8")),
        "verdict": reports.write_bytes(
            f"{prefix}.verdict.json", json.dumps(result.verdict, indent=2, sort_keys=True).encode("utf-8")
        ),
    }
    log.info("saved monitoring report %s (%.1f MB)", uris["html"], len(html) / 1e6)
    return uris


def _champion_reference(client: Any, model_name: str, version: str) -> tuple[Any, pd.DataFrame]:
    """The model version that scored the day and its training reference (what monitoring compares with)."""
    import pandas as pd

    mv = client.get_model_version(model_name, version)
    with tempfile.TemporaryDirectory(prefix="mlops-monitor-") as tmp:
        try:
            local = client.download_artifacts(mv.run_id, model_store.REFERENCE_ARTIFACT, tmp)
        except Exception as exc:
            raise ModelNotFoundError(f"{model_name} v{version} (run {mv.run_id}) has no training reference "
                                     f"'{model_store.REFERENCE_ARTIFACT}' to monitor against: {exc}") from exc
        return mv, pd.read_parquet(local)


def _log_to_mlflow(client: Any, run_id: str, reports: Lake, uris: dict[str, str], day: dt.date) -> None:
    with tempfile.TemporaryDirectory(prefix="mlops-report-") as tmp:
        for kind, name in REPORT_FILES:
            path = Path(tmp) / name
            path.write_bytes(reports.read_bytes(uris[kind].split(reports.root, 1)[1].lstrip("/")))
            client.log_artifact(run_id, str(path), f"monitoring/dt={day.isoformat()}")


def run_monitor(project: ProjectConfig, *, lake: Lake, reports: Lake, day: str | dt.date, tracking_uri: str,
                registry_uri: str | None = None) -> dict[str, Any]:
    """Monitor day ``day`` against the reference of the champion version that scored it."""
    day = as_date(day)
    table = predictions_table(project)
    if not lake.exists(table, day):
        raise MlopsError(f"{project.name} {day}: no predictions partition "
                         f"{lake.uri(lake.partition_path(table, day))}; run the score DAG first")
    # The monitored inputs and the scores only: a 10M-row day read whole took 5.6 GiB.
    features = monitored_features(project)
    output = scoring.output_column(project.task)
    current = lake.read(table, day, columns=list(dict.fromkeys([*features, output, "champion_version"])))
    version = str(int(current["champion_version"].iloc[0]))
    client = model_store.client_for(tracking_uri, registry_uri)
    mv, reference = _champion_reference(client, project.model_name, version)
    run = client.get_run(mv.run_id)
    holdout_metrics = as_monitoring_reference(run.data.metrics, holdout_rows=run.data.params.get("holdout_rows"),
                                              holdout_positives=run.data.params.get("holdout_positives"),
                                              task=project.task)
    result = drift.monitor_day(project, reference=reference, current=current, feature_columns=features,
                               labelled=labelled_predictions(project, lake, day), seed=day.toordinal(),
                               reference_metrics=holdout_metrics)
    uris = save_report(result, reports, f"{project.name}/monitoring/dt={day.isoformat()}/report")
    _log_to_mlflow(client, mv.run_id, reports, uris, day)
    log.info("%s %s: monitoring verdict %s; report %s (logged to MLflow run %s)", project.name, day,
             result.kind, uris["html"], mv.run_id)
    return {"day": day.isoformat(), "kind": result.kind, "model_name": project.model_name,
            "model_version": version, "run_id": mv.run_id, "report": uris, "verdict": result.verdict}
