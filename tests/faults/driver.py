"""One task of a stage, run in its own process so a fault can kill it: ``python -m tests.faults.driver OP ARGS_JSON``.

The test starts this with ``MLOPS_HOME`` (and ``MLOPS_FAILPOINTS``) set, the way Airflow's task runner
starts a try; the stage functions are the provider's own. The task's result (what the operator would
push to XCom) is printed as JSON on the last line of stdout, so a try that dies prints none.

Two failpoints live here rather than in the provider: ``mlflow.alias`` after every alias write of the
MLflow client (the model store is written by others at the same time), and ``task.return`` after a task
did its work but before its result is returned (the worker dies before the XCom push).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from mlops_provider.config.failpoints import hit

MODEL = "fraud_classifier"


def _project():
    from mlops_provider.config.project import load_project

    return load_project("fraud")


def _lake(args: dict[str, Any]):
    from mlops_provider.io.lake import Lake

    s3 = args.get("s3")
    if not s3:
        return Lake()
    import pyarrow.fs as pafs

    fs = pafs.S3FileSystem(access_key="testing", secret_key="testing", region="us-east-1", scheme="http",
                           endpoint_override=s3["endpoint"].split("://", 1)[1], connect_timeout=2,
                           request_timeout=5, retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=1))
    return Lake(f"s3://{s3['bucket']}/lake", filesystem=fs)


def _source(args: dict[str, Any]):
    from mlops_provider.config import paths
    from mlops_provider.io.sources import LandingSource, PostgresSource

    pg = args.get("postgres")
    if not pg:
        return LandingSource(paths.landing_dir() / "fraud")

    def connect():
        import psycopg2

        return psycopg2.connect(host=pg["host"], port=pg["port"], user=pg["user"], dbname=pg["dbname"],
                                connect_timeout=3, application_name="mlops-faults")

    return PostgresSource(connect, pg["table"], "event_timestamp", batch_rows=int(pg.get("batch_rows", 100)))


def stage_day(args: dict[str, Any]) -> dict[str, Any]:
    from mlops_provider.stages.ingest import stage_day as run

    return run(_project(), _lake(args), _source(args), args["day"], run_id=args["run_id"])


def gate_day(args: dict[str, Any]) -> dict[str, Any]:
    from mlops_provider.config import paths
    from mlops_provider.io.lake import Lake
    from mlops_provider.stages.ingest import gate_day as run

    return run(_project(), _lake(args), Lake(paths.reports_uri()), args["day"], run_id=args["run_id"])


def features(args: dict[str, Any]) -> dict[str, Any]:
    from mlops_provider.stages.features import compute_entity_features, compute_record_features

    project, lake = _project(), _lake(args)
    return {"entity": compute_entity_features(project, lake, args["day"]),
            "record": compute_record_features(project, lake, args["day"])}


def materialize(args: dict[str, Any]) -> dict[str, Any]:
    from mlops_provider.domain.features import feature_timestamp
    from mlops_provider.io.feature_store import ProjectFeatureStore

    store = ProjectFeatureStore(_project(), lake=_lake(args), settings=args.get("settings"))
    store.apply()
    result = store.materialize(feature_timestamp(args["start"]), feature_timestamp(args["end"]), chunk_days=1)
    return {**result, "freshness": store.check_freshness(args["end"], sample_size=int(args.get("sample", 200)))}


def promote(args: dict[str, Any]) -> dict[str, Any]:
    from mlflow import MlflowClient
    from mlops_provider.io import model_store

    original = MlflowClient.set_registered_model_alias

    def set_alias(self, *a, **k):
        original(self, *a, **k)
        hit("mlflow.alias")

    MlflowClient.set_registered_model_alias = set_alias
    client = model_store.client_for(args.get("tracking_uri"))
    return model_store.promote(client, MODEL, args["version"], reason="fault test",
                               expected_champion=args["expected_champion"])


def register(args: dict[str, Any]) -> dict[str, Any]:
    """The end of a training run: a new version registered, then aliased ``challenger`` (under the model lock)."""
    from mlops_provider.config import paths
    from mlops_provider.io import model_store

    client = model_store.client_for(args.get("tracking_uri"))
    version = client.create_model_version(MODEL, (paths.mlops_home() / "model").as_uri(), tags={"project": "fraud"})
    return {"version": str(version.version), "challenger": model_store.set_challenger(client, MODEL, version.version)}


def _transport(args: dict[str, Any]):
    from mlops_provider.io.email import OutboxTransport, SmtpSettings, SmtpTransport

    if "smtp_port" not in args:
        return OutboxTransport()
    return SmtpTransport(SmtpSettings(host="127.0.0.1", port=int(args["smtp_port"]), use_ssl=False, starttls=False,
                                      timeout=5, retry_limit=0, name="faults"))


def _alert(args: dict[str, Any], summary: dict[str, Any], actions: list[str]) -> dict[str, Any]:
    import inspect

    from mlops_provider.stages.alerting import send_monitoring_alert

    optional = {"report_html": None}  # passed only while the stage still takes it (the report is not attached here)
    accepted = inspect.signature(send_monitoring_alert).parameters
    return send_monitoring_alert(_project(), summary, transport=_transport(args), actions=actions, run_url=None,
                                 report_url=summary["report"]["html"], mlflow_run_url=None,
                                 **{k: v for k, v in optional.items() if k in accepted})


def alert(args: dict[str, Any]) -> dict[str, Any]:
    return _alert(args, json.loads(open(args["summary"]).read()), ["fault test"])


#: What ``MonitorDriftOperator`` names its requests by: ``dag_id/run_id/task_id``, the same for every try.
MONITOR_TASK = "fraud__monitor/scheduled__2024-02-03/monitor"


def monitor_tail(args: dict[str, Any]) -> dict[str, Any]:
    """The monitoring task after its report (``MonitorDriftOperator._monitor``): decide, email, record, return."""
    from mlops_provider.config import paths
    from mlops_provider.io.lake import Lake
    from mlops_provider.stages.retrain import record_retrain_request, request_retrain

    project, reports = _project(), Lake(paths.reports_uri())
    summary = json.loads(open(args["summary"]).read())
    retrain = request_retrain(project, reports, summary["day"], summary["kind"], record=False,
                              requested_by=MONITOR_TASK)
    alert = None if summary["kind"] == "ok" else _alert(args, summary, [retrain["reason"]])
    if retrain["requested"] and not retrain.get("recorded"):
        retrain["marker"] = record_retrain_request(project, reports, retrain, requested_by=MONITOR_TASK)
    hit("task.return")
    return {"day": summary["day"], "kind": summary["kind"], "retrain_requested": retrain["requested"],
            "retrain": retrain, "alert": alert}


def announce_retrain(args: dict[str, Any]) -> dict[str, Any]:
    """``RequestRetrainOperator`` given the monitor's result: the request is marked announced (the event goes out)."""
    from mlops_provider.config import paths
    from mlops_provider.io.lake import Lake
    from mlops_provider.stages.retrain import mark_retrain_announced

    marker = mark_retrain_announced(_project(), Lake(paths.reports_uri()), args["day"],
                                    "fraud__monitor/scheduled__2024-02-03/request_retrain")
    return {"announced": args["day"], "marker": marker}


def main() -> None:
    op, args = sys.argv[1], json.loads(sys.argv[2])
    result = globals()[op](args)
    print("\n" + json.dumps(result, default=str))


if __name__ == "__main__":
    main()
