"""The model store on MLflow: experiments, training runs, registered versions, aliases, model loading.

Promotion *policy* lives in :mod:`mlops_provider.domain.promotion` and the gate that applies it in
:mod:`mlops_provider.stages.promote`; this module only reads and writes the registry.

Aliases are the only pointers a consumer follows: ``champion`` serves traffic, ``challenger`` is the
newest trained candidate and ``previous_champion`` is where a rollback goes. Every alias change runs
under an exclusive per-model lock and re-reads the aliases inside it, so two promotions never
interleave. The lock comes from :mod:`mlops_provider.io.coordination`: a PostgreSQL advisory lock when
a coordination database is configured (workers on several hosts), an ``fcntl`` lock file under
``MLOPS_HOME/locks`` for the embedded default. The DAGs also route every promotion / rollback task
through an Airflow pool of size 1.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import tempfile
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from mlops_provider.config import paths
from mlops_provider.config.environment import patched_environ
from mlops_provider.domain.metrics import ALL_METRICS, predict
from mlops_provider.exceptions import MlopsError, ModelNotFoundError, UntrustedModelError

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient

    from mlops_provider.config.project import ProjectConfig
    from mlops_provider.domain.training import TrainedModel
    from mlops_provider.io.coordination import Coordination

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION = "previous_champion"

HOLDOUT_ARTIFACT = "holdout/holdout.parquet"
REFERENCE_ARTIFACT = "reference/reference.parquet"

_UNSET: Any = object()
_PENDING_PREVIOUS = "pending_previous_champion"
DECISION_KEY_TAG = "promotion_decision_key"


# -- MLflow plumbing shared by training, scoring and the operators ------------------------------------
def client_for(tracking_uri: str | None = None, registry_uri: str | None = None) -> MlflowClient:
    from mlflow import MlflowClient

    tracking_uri = tracking_uri or paths.mlflow_tracking_uri()
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri or tracking_uri)


def default_artifact_location(tracking_uri: str, experiment_name: str) -> str | None:
    """Where a new experiment keeps artifacts when nobody configured it.

    A database store without an artifact root would write to ``./mlruns`` of whatever directory the
    worker runs in; the embedded default keeps them under ``MLOPS_HOME`` instead. A tracking server
    picks its own location, so ``None`` is returned for it.
    """
    scheme = tracking_uri.split(":", 1)[0].split("+", 1)[0] if "://" in tracking_uri else "file"
    if scheme in {"sqlite", "postgresql", "mysql", "mssql", "file"}:
        return f"{paths.mlflow_artifact_root().rstrip('/')}/{experiment_name}"
    return None


def ensure_experiment(client: MlflowClient, name: str, artifact_location: str | None = None) -> str:
    """The id of experiment ``name``, created (with ``artifact_location`` when given) if missing."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            client.restore_experiment(found.experiment_id)
        return found.experiment_id
    try:
        return client.create_experiment(name, artifact_location=artifact_location)
    except MlflowException:
        # Another task created it between our read and our write.
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


@contextmanager
def tracking(tracking_uri: str, registry_uri: str | None = None) -> Iterator[None]:
    """Point MLflow's fluent API at ``tracking_uri`` for the block, then restore exactly what was set before."""
    import mlflow
    from mlflow.tracking import fluent
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    saved_tracking, saved_registry = tracking_utils._tracking_uri, registry_utils._registry_uri
    # An experiment set inside the block belongs to this store: it must not become another store's default.
    saved_experiment = fluent._active_experiment_id
    # mlflow.set_*_uri and set_experiment also export MLFLOW_*; patched_environ puts them back as they were.
    exported = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME")
    with patched_environ({k: os.environ.get(k) for k in exported}):
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(registry_uri or tracking_uri)
        try:
            yield
        finally:
            mlflow.set_tracking_uri(saved_tracking)
            registry_utils._registry_uri = saved_registry
            fluent._active_experiment_id = saved_experiment


@contextmanager
def thread_limit() -> Iterator[None]:
    """Cap OpenMP threads of model fitting and scoring (``MLOPS_MODEL_THREADS``, default 1).

    HistGradientBoosting's OpenMP threads stall when a worker's cores are shared with other tasks
    (0.3 s vs 9 s for the same fit, measured on 2 busy cores); raise the cap on dedicated hosts.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=int(os.environ.get("MLOPS_MODEL_THREADS", "1")), user_api="openmp"):
        yield


def as_version(value: Any) -> str | None:
    return None if value is None else str(value)


# -- aliases ------------------------------------------------------------------------------------------
@contextmanager
def model_lock(model_name: str, timeout: float = 300.0, *, coordination: Coordination | None = None) -> Iterator[None]:
    """Exclusive lock on the aliases of ``model_name``, from ``coordination`` (default: :func:`coordination.default`)."""
    from mlops_provider.io import coordination as coordination_module

    with (coordination or coordination_module.default()).lock(f"model {model_name}", timeout=timeout):
        yield


def aliases(client: MlflowClient, model_name: str) -> dict[str, Any]:
    """Alias -> version of the registered model (``champion``/``challenger``/``previous_champion`` always present)."""
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(model_name)
    except MlflowException as exc:
        if getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST":
            raise ModelNotFoundError(f"registered model '{model_name}' does not exist in the MLflow registry") from exc
        raise
    found = {alias: as_version(v) for alias, v in (model.aliases or {}).items()}
    summary = {CHAMPION: None, CHALLENGER: None, PREVIOUS_CHAMPION: None}
    summary.update(found)
    return summary


def model_version(client: MlflowClient, model_name: str, version: str | int):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version(model_name, str(version))
    except MlflowException as exc:
        raise ModelNotFoundError(f"model version {model_name} v{version} does not exist in the MLflow registry") from exc


def check_registered_by_pipeline(mv: Any, project_name: str) -> None:
    """Refuse a version this project's training did not register (its ``project`` tag says which project did).

    Training tags every version it registers with ``project`` and ``airflow_run_id``
    (:func:`log_training_run`); a version registered by hand or by another project is no candidate
    for champion. A provenance check, not authentication: whoever can write the registry can write tags
    too; what keeps such a person from running code on a worker is :func:`load_model` (skops only).
    """
    tags = mv.tags or {}
    owner = tags.get("project")
    where = f"{mv.name} v{mv.version}"
    if owner is None:
        raise UntrustedModelError(
            f"refusing {where}: it has no 'project' tag, so this pipeline's training did not register it "
            f"(registered by hand?); train it through the {project_name}__train DAG")
    if owner != project_name:
        raise UntrustedModelError(
            f"refusing {where}: its 'project' tag says it was registered by project {owner!r}, not {project_name!r}")


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def set_version_tags(client: MlflowClient, model_name: str, version: str, tags: dict[str, Any]) -> None:
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version, key, str(value))


def promote(
    client: MlflowClient,
    model_name: str,
    version: str | int,
    *,
    reason: str,
    expected_champion: str | int | None = _UNSET,
    coordination: Coordination | None = None,
) -> dict[str, Any]:
    """Make ``version`` the champion; the replaced champion becomes ``previous_champion``.

    Write order (a crash between any two writes leaves champion set and vetted):
    1. decision tags on ``version`` (it is vetted before anything points at it), including a
       ``pending_previous_champion`` tag naming the champion it replaces;
    2. ``champion`` -> ``version`` (one atomic alias move, champion is never missing);
    3. ``previous_champion`` -> the replaced champion;
    4. drop ``challenger`` if it points at ``version``;
    5. delete the pending tag. A retry that finds the tag redoes 3-5.
    With ``expected_champion`` given (the champion the decision was made against), a champion that moved
    in the meantime returns ``{"promoted": False, "stale": True}`` so the caller re-evaluates.
    The model lock comes from ``coordination`` (default :func:`mlops_provider.io.coordination.default`).
    """
    version = str(version)
    with model_lock(model_name, coordination=coordination):
        current = aliases(client, model_name)  # re-read inside the lock: the caller's view may be stale
        mv = model_version(client, model_name, version)
        old = current[CHAMPION]
        if expected_champion is not _UNSET and as_version(expected_champion) != old and old != version:
            return _stale_promotion(model_name, version, expected_champion, old)
        if old == version:
            return _finish_promotion(client, model_name, version, mv, current, reason)
        return _move_champion(client, model_name, version, old, current, reason)


def _stale_promotion(model_name: str, version: str, expected_champion: Any, old: str | None) -> dict[str, Any]:
    """The refusal returned when the champion moved while ``version`` was evaluated against another one."""
    log.warning("%s: champion moved from v%s to v%s while v%s was evaluated", model_name, expected_champion, old, version)
    return {
        "promoted": False,
        "stale": True,
        "model_name": model_name,
        "version": version,
        "champion": old,
        "reason": f"champion moved from v{expected_champion} to v{old} while v{version} was evaluated; "
        "re-evaluate against the new champion",
    }


def _finish_promotion(client: MlflowClient, model_name: str, version: str, mv: Any, current: dict[str, Any],
                      reason: str) -> dict[str, Any]:
    """Under the model lock, ``version`` already champion: redo steps 3-5 of a promotion its tag shows interrupted."""
    # A tag left pending means an earlier attempt died between its alias writes: finish that
    # bookkeeping (and only that; a later rollback must not be undone).
    pending = mv.tags.get(_PENDING_PREVIOUS)
    if pending is not None:
        if pending and pending != version:
            client.set_registered_model_alias(model_name, PREVIOUS_CHAMPION, pending)
        if current[CHALLENGER] == version:
            client.delete_registered_model_alias(model_name, CHALLENGER)
        client.delete_model_version_tag(model_name, version, _PENDING_PREVIOUS)
        log.warning("%s v%s: finished an interrupted promotion (previous_champion v%s)", model_name,
                    version, pending or None)
    else:
        log.info("%s v%s is already champion; nothing to move", model_name, version)
    return {**alias_summary(client, model_name), "promoted": True, "already_champion": True,
            "version": version, "reason": mv.tags.get("promotion_reason", reason)}


def _move_champion(client: MlflowClient, model_name: str, version: str, old: str | None, current: dict[str, Any],
                   reason: str) -> dict[str, Any]:
    """Steps 1-5 of :func:`promote` under the model lock, in that order: a retry can finish any prefix of them."""
    tags = {"promotion_decision": "promoted", "promotion_reason": reason, "promoted_at": now_iso(),
            _PENDING_PREVIOUS: old or ""}
    if old:
        tags["replaced_champion"] = old
    set_version_tags(client, model_name, version, tags)
    client.set_registered_model_alias(model_name, CHAMPION, version)
    if old:
        client.set_registered_model_alias(model_name, PREVIOUS_CHAMPION, old)
    elif current[PREVIOUS_CHAMPION] == version:
        client.delete_registered_model_alias(model_name, PREVIOUS_CHAMPION)
    if current[CHALLENGER] == version:
        client.delete_registered_model_alias(model_name, CHALLENGER)
    client.delete_model_version_tag(model_name, version, _PENDING_PREVIOUS)
    log.info("%s: champion v%s -> v%s (%s)", model_name, old, version, reason)
    return {**alias_summary(client, model_name), "promoted": True, "version": version, "replaced": old, "reason": reason}


def set_challenger(client: MlflowClient, model_name: str, version: str | int) -> bool:
    """Alias ``version`` ``challenger`` under the model lock, as every alias write; whether it is challenger now.

    A promotion reads ``challenger`` and drops it when it points at the new champion: a registration
    writing in between would lose its alias. Inside the lock the aliases are read again: a version that
    serves or served (``champion`` / ``previous_champion``) or whose promotion was decided already (a
    retry, or a reused version, after its promotion task) is not made a candidate again, and a newer
    ``challenger`` (a later registration) is not replaced.
    """
    version = str(version)
    with model_lock(model_name):
        current = aliases(client, model_name)
        served = [alias for alias in (CHAMPION, PREVIOUS_CHAMPION) if current[alias] == version]
        decided = (model_version(client, model_name, version).tags or {}).get("promotion_decision")
        if served or decided in ("promoted", "refused"):
            log.info("%s v%s is no candidate any more (%s); challenger stays v%s", model_name, version,
                     served[0] if served else decided, current[CHALLENGER])
            return version == current[CHALLENGER]
        if current[CHALLENGER] is not None and int(current[CHALLENGER]) > int(version):
            log.info("%s: challenger v%s is newer than v%s; left as it is", model_name, current[CHALLENGER], version)
            return False
        if current[CHALLENGER] != version:
            client.set_registered_model_alias(model_name, CHALLENGER, version)
        return True


def alias_summary(client: MlflowClient, model_name: str) -> dict[str, Any]:
    now = aliases(client, model_name)
    return {"model_name": model_name, CHAMPION: now[CHAMPION], PREVIOUS_CHAMPION: now[PREVIOUS_CHAMPION],
            CHALLENGER: now[CHALLENGER]}


def refuse(client: MlflowClient, model_name: str, version: str | int, reason: str) -> dict[str, Any]:
    """Record on the version why it was not promoted; aliases stay as they are."""
    version = str(version)
    model_version(client, model_name, version)
    set_version_tags(client, model_name, version,
              {"promotion_decision": "refused", "promotion_reason": reason, "decided_at": now_iso()})
    log.info("%s v%s refused: %s", model_name, version, reason)
    return {"promoted": False, "model_name": model_name, "version": version, "reason": reason}


_ROLLBACK_TAG = "rollback_in_progress"  # registered-model tag: the rollback a decision key applies


def rollback(client: MlflowClient, model_name: str, to: str | int = "previous", *,
             decision_key: str | None = None, project: str | None = None,
             coordination: Coordination | None = None) -> dict[str, Any]:
    """Point ``champion`` back at ``previous_champion`` (or at version ``to``); the old champion becomes previous.

    ``champion`` is written first (to a version that served before or that an operator named), then
    ``previous_champion``; a crash in between leaves a valid champion.

    ``decision_key`` (the Airflow task that rolls back) makes retries safe: the rollback's target and
    origin are recorded on the registered model *before* any alias moves, and a retry with the same key
    finishes or returns that rollback instead of computing a new one -- which, with ``to="previous"``,
    would swap the bad model straight back in. With ``project``, a target that project's training did not
    register is refused (:func:`check_registered_by_pipeline`) before anything moves. The model lock
    comes from ``coordination`` (default :func:`mlops_provider.io.coordination.default`).
    """
    with model_lock(model_name, coordination=coordination):
        recorded = _recorded_rollback(client, model_name, decision_key)
        if recorded is not None:
            return _finish_rollback(client, model_name, recorded, retried=True)
        current = aliases(client, model_name)
        if current[CHAMPION] is not None:
            champion = model_version(client, model_name, current[CHAMPION])
            if champion.tags.get(_PENDING_PREVIOUS) is not None:
                # A promotion died between its alias writes: ``previous_champion`` still names the version
                # before the one it replaced. Finish that bookkeeping first, or "previous" would skip one back.
                _finish_promotion(client, model_name, current[CHAMPION], champion, current, "")
                current = aliases(client, model_name)
        old = current[CHAMPION]
        target = _rollback_target(model_name, current, to)
        mv = model_version(client, model_name, target)
        if project is not None:
            check_registered_by_pipeline(mv, project)
        if target == old:
            raise ModelNotFoundError(
                f"cannot roll back {model_name}: v{target} is already the champion; nothing to roll back to"
            )
        plan = {"key": decision_key, "target": target, "from": old,
                "clear_previous": not old and current[PREVIOUS_CHAMPION] == target}
        if decision_key:
            client.set_registered_model_tag(model_name, _ROLLBACK_TAG, json.dumps(plan))
        set_version_tags(client, model_name, target, {"rollback_from": old or "", "rolled_back_at": now_iso()})
        return _finish_rollback(client, model_name, plan, retried=False)


def _rollback_target(model_name: str, current: dict[str, Any], to: str | int) -> str:
    if str(to) != "previous":
        return str(int(to))
    if current[PREVIOUS_CHAMPION] is None:
        raise ModelNotFoundError(
            f"cannot roll back {model_name}: it has no '{PREVIOUS_CHAMPION}' alias (champion is "
            f"v{current[CHAMPION]}); nothing to roll back to. Pass to=<version> to pick a version explicitly."
        )
    return current[PREVIOUS_CHAMPION]


def _recorded_rollback(client: MlflowClient, model_name: str, decision_key: str | None) -> dict[str, Any] | None:
    """The rollback ``decision_key`` already started or applied, if any."""
    if not decision_key:
        return None
    raw = (client.get_registered_model(model_name).tags or {}).get(_ROLLBACK_TAG)
    plan = json.loads(raw) if raw else None
    return plan if plan and plan.get("key") == decision_key else None


def _finish_rollback(client: MlflowClient, model_name: str, plan: dict[str, Any], *, retried: bool) -> dict[str, Any]:
    """Apply ``plan``'s alias moves (each idempotent); a retry re-applies exactly the same ones."""
    target, old = plan["target"], plan["from"]
    if not retried or not plan.get("done"):
        client.set_registered_model_alias(model_name, CHAMPION, target)
        if old:
            client.set_registered_model_alias(model_name, PREVIOUS_CHAMPION, old)
            set_version_tags(client, model_name, old, {"rolled_back_to": target, "rolled_back_at": now_iso()})
        elif plan.get("clear_previous") and aliases(client, model_name)[PREVIOUS_CHAMPION] == target:
            client.delete_registered_model_alias(model_name, PREVIOUS_CHAMPION)
        if plan.get("key"):
            client.set_registered_model_tag(model_name, _ROLLBACK_TAG, json.dumps({**plan, "done": True}))
        log.warning("%s rolled back: champion v%s -> v%s", model_name, old, target)
    else:
        log.warning("%s: %s already rolled back v%s -> v%s; not rolling back again", model_name, plan["key"], old,
                    target)
    return {**alias_summary(client, model_name), "rolled_back_from": old, "version": target,
            **({"already_rolled_back": True} if retried else {})}


def shadow_record(client: MlflowClient, model_name: str, version: str | int) -> dict[str, Any]:
    """What shadow scoring observed for ``version`` while it was challenger (``shadow.<day>`` version tags)."""
    import json

    tags = model_version(client, model_name, version).tags or {}
    days = {k.split(".", 1)[1]: json.loads(v) for k, v in tags.items() if k.startswith("shadow.")}
    agreement = [d["agreement_rate"] for d in days.values() if d.get("agreement_rate") is not None]
    return {"days": len(days), "first_day": min(days, default=None), "last_day": max(days, default=None),
            "mean_agreement_rate": sum(agreement) / len(agreement) if agreement else None,
            "max_ks_statistic": max((d.get("ks_statistic") or 0.0 for d in days.values()), default=None)}


def load_holdout(client: MlflowClient, run_id: str) -> pd.DataFrame:
    """The holdout rows a training run evaluated on (challenger and champion are compared on exactly these)."""
    import pandas as pd
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory(prefix="mlops-holdout-") as tmp:
        try:
            local = client.download_artifacts(run_id, HOLDOUT_ARTIFACT, tmp)
        except (MlflowException, OSError) as exc:
            raise ModelNotFoundError(f"run {run_id} has no holdout artifact '{HOLDOUT_ARTIFACT}': {exc}") from exc
        return pd.read_parquet(local)


# -- loading models -----------------------------------------------------------------------------------
_MODELS: dict[tuple[str, str], Any] = {}
_MODELS_LOCK = threading.Lock()
_ALIAS_URI = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[^/]+)$")
_VERSION_URI = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>\d+)$")


def _resolve(model_uri: str, tracking_uri: str | None, registry_uri: str | None) -> tuple[str, str | None]:
    """``(uri, version)`` with an alias URI turned into its immutable ``models:/name/version`` form."""
    if match := _ALIAS_URI.match(model_uri):
        version = aliases(client_for(tracking_uri, registry_uri), match["name"]).get(match["alias"])
        if version is None:
            raise ModelNotFoundError(f"registered model '{match['name']}' has no alias '{match['alias']}' ({model_uri})")
        return f"models:/{match['name']}/{version}", version
    if match := _VERSION_URI.match(model_uri):
        return model_uri, match["version"]
    return model_uri, None


def load_model(model_uri: str, *, tracking_uri: str | None = None, registry_uri: str | None = None) -> Any:
    """The scikit-learn model at ``model_uri``, loaded once per (store, URI, version) in this process.

    Only a model whose MLmodel file says skops serialization is loaded, and only with the types this
    provider pins (:data:`TRUSTED_SKOPS_TYPES`), never the trusted-types list stored with the model:
    pickle, cloudpickle or an unexpected type raises :class:`~mlops_provider.exceptions.UntrustedModelError`
    (no retry) before any byte of the model is deserialized.
    """
    from mlflow.exceptions import MlflowException

    tracking_uri = tracking_uri or paths.mlflow_tracking_uri()
    uri, version = _resolve(model_uri, tracking_uri, registry_uri)
    key = (f"{registry_uri or tracking_uri}|{uri}", version or "")
    store = _safe_uri(registry_uri or tracking_uri)
    with _MODELS_LOCK:
        if key in _MODELS:
            return _MODELS[key]
        log.info("loading %s from %s", uri, store)
        try:
            with tracking(tracking_uri, registry_uri), quiet_warnings():
                model = _load_skops_model(uri)
        except MlflowException as exc:
            raise ModelNotFoundError(f"cannot load model {uri} from {store}: {exc}") from exc
        # Only immutable URIs are cached: a run or version never changes, an arbitrary path might.
        if version is not None or uri.startswith("runs:/"):
            _MODELS[key] = model
        return model


def _safe_uri(uri: str | None) -> str:
    """``uri`` fit for a log line: no ``user:password@``, no credential query parameters (else unchanged)."""
    from mlops_provider.domain.alerts import strip_userinfo

    netloc = (uri or "").split("://", 1)[-1].split("/", 1)[0]
    return strip_userinfo(uri) if "@" in netloc or "?" in (uri or "") else (uri or "")


def _load_skops_model(uri: str) -> Any:
    """Download the model at ``uri``, check its MLmodel flavor, and deserialize it with skops and the pinned types."""
    import mlflow.artifacts
    import skops.io
    from mlflow.models import Model
    from skops.io.exceptions import UntrustedTypesFoundException

    with tempfile.TemporaryDirectory(prefix="mlops-model-") as tmp:
        local = os.path.realpath(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp))
        flavor = Model.load(local).flavors.get("sklearn")
        if flavor is None:
            raise UntrustedModelError(f"refusing to load {uri}: it has no sklearn flavor; this pipeline loads only "
                                      "scikit-learn models saved as skops by its own training")
        fmt = flavor.get("serialization_format", "pickle")  # MLflow's own default for a flavor without one
        if fmt != "skops":
            raise UntrustedModelError(
                f"refusing to load {uri}: its MLmodel says serialization_format {fmt!r}; this pipeline loads only "
                "'skops' models (unpickling runs whatever code the artifact store holds). Retrain it with the "
                "train DAG, which logs skops")
        path = os.path.realpath(os.path.join(local, str(flavor.get("pickled_model", ""))))
        if not path.startswith(local + os.sep) or not os.path.isfile(path):
            raise UntrustedModelError(f"refusing to load {uri}: its model file {flavor.get('pickled_model')!r} is "
                                      "not a file inside the model directory")
        try:
            return skops.io.load(path, trusted=sorted(TRUSTED_SKOPS_TYPES))
        except UntrustedTypesFoundException as exc:
            raise UntrustedModelError(f"refusing to load {uri}: it holds types this provider does not trust "
                                      f"({exc}); the trusted ones are pinned in model_store.TRUSTED_SKOPS_TYPES"
                                      ) from exc


def clear_cache() -> None:
    with _MODELS_LOCK:
        _MODELS.clear()


def resolve_versions(model_name: str, *, tracking_uri: str, registry_uri: str | None = None
                     ) -> tuple[str, str | None]:
    """``(champion, challenger or None)`` now: pinned for a whole day, so one partition never mixes versions."""
    current = aliases(client_for(tracking_uri, registry_uri), model_name)
    champion = current[CHAMPION]
    if champion is None:
        raise ModelNotFoundError(
            f"registered model '{model_name}' has no '{CHAMPION}' alias: nothing may score yet. "
            "Promote a trained version first (the promote task of the training DAG)."
        )
    challenger = current[CHALLENGER]
    return champion, (challenger if challenger is not None and challenger != champion else None)


def load_pinned(model_name: str, versions: tuple[str, str | None], *, tracking_uri: str,
                registry_uri: str | None = None) -> tuple[Any, Any | None]:
    """The champion and (shadow) challenger models of ``versions``; a challenger that cannot load is ``None``.

    Shadow scoring informs; a challenger whose files are gone must never stop the champion from scoring.
    """
    champion, challenger = versions
    champion_model = load_model(f"models:/{model_name}/{champion}", tracking_uri=tracking_uri,
                                registry_uri=registry_uri)
    challenger_model = None
    if challenger is not None:
        try:
            challenger_model = load_model(f"models:/{model_name}/{challenger}", tracking_uri=tracking_uri,
                                          registry_uri=registry_uri)
        except MlopsError as exc:
            log.warning("shadow scoring with %s v%s skipped: %s", model_name, challenger, exc)
    return champion_model, challenger_model


@contextmanager
def quiet_warnings() -> Iterator[None]:
    # skops locates scipy ufuncs by probing every loaded module, which trips each Airflow
    # deprecation shim once per ufunc: hundreds of irrelevant warnings per saved or loaded model.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# -- training runs ------------------------------------------------------------------------------------
def find_registered_run(
    client: MlflowClient, experiment_id: str, project: str, model_name: str, airflow_run_id: str | None = None,
    *, tag: str = "airflow_run_id", value: str | None = None,
) -> dict[str, Any] | None:
    """The result of an earlier run with the same ``tag`` value (by default: an earlier try of the same
    Airflow run) that already registered a version, if any."""
    value = airflow_run_id if value is None else value
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.{tag} = '{_quote(value)}' and tags.project = '{_quote(project)}'",
        order_by=["attributes.start_time ASC"],
    )
    for run in runs:
        versions = client.search_model_versions(f"name = '{_quote(model_name)}' and run_id = '{run.info.run_id}'")
        if not versions:
            continue
        version = min(versions, key=lambda v: int(v.version))
        metrics = dict(run.data.metrics)
        return {
            "run_id": run.info.run_id,
            "experiment_id": experiment_id,
            "model_name": model_name,
            "version": str(version.version),
            "metrics": {k: v for k, v in metrics.items() if k in ALL_METRICS},
            "baseline_metrics": {k[9:]: v for k, v in metrics.items() if k.startswith("baseline_")},
            "holdout_uri": run.data.tags.get("holdout_uri") or f"{run.info.artifact_uri}/{HOLDOUT_ARTIFACT}",
            "reused": True,
        }
    return None


def registered_by(project: ProjectConfig, client: MlflowClient, experiment_id: str, *, tag: str, value: str
                  ) -> dict[str, Any] | None:
    """The registered result of an earlier training run of ``project`` tagged ``tag = value``, if any."""
    earlier = find_registered_run(client, experiment_id, project.name, project.model_name, tag=tag, value=value)
    if earlier:
        log.info("%s = %s already registered %s v%s (MLflow run %s); not training again", tag, value,
                 project.model_name, earlier["version"], earlier["run_id"])
    return earlier


def _quote(value: str) -> str:
    return str(value).replace("'", "\\'")


#: The types beyond skops' defaults (scikit-learn estimators, numpy, builtins) that this provider's own
#: models hold, for every task and estimator of ``domain/training.py`` (a test builds each and checks).
#: :func:`load_model` trusts these and nothing else, whatever a model's MLmodel file lists.
TRUSTED_SKOPS_TYPES = frozenset({
    "functools.partial",
    "numpy.dtype",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.tree._tree.Tree",
    "sklearn.utils.validation.check_array",
})


def _skops_trusted_types(model: Any) -> list[str]:
    """The types of our own freshly built model, so skops (MLflow's safe default format) will load it back.

    Recorded in the MLmodel file for MLflow's own loader; :func:`load_model` uses the pinned
    :data:`TRUSTED_SKOPS_TYPES` instead, so a model needing any other type fails here, at training.
    """
    import skops.io

    with quiet_warnings():
        needed = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    if extra := sorted(set(needed) - TRUSTED_SKOPS_TYPES):
        raise MlopsError(f"the trained model holds types the provider does not trust when loading: {extra}; "
                         "review them and add them to model_store.TRUSTED_SKOPS_TYPES")
    return needed


def pip_requirements() -> list[str]:
    """Pinned requirements of the logged model; stating them skips MLflow's slow subprocess inference."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for dist in ("mlflow", "scikit-learn", "skops", "numpy", "pandas", "scipy", "cloudpickle"):
        try:
            out.append(f"{dist}=={version(dist)}")
        except PackageNotFoundError:
            continue
    return out


def _log_datasets(project: ProjectConfig, trained: TrainedModel, dataset_sources: list[str]) -> None:
    """Each split as an MLflow dataset input, with the lake partitions its rows came from."""
    import mlflow
    import mlflow.data

    from mlops_provider.domain.training import split_source

    keep, datasets = trained.logged_columns(project), {}
    for name, context in (("train", "training"), ("validation", "validation"), ("holdout", "evaluation")):
        source, uris = split_source(project, dataset_sources, trained.splits.days[name])
        datasets[name] = uris
        with warnings.catch_warnings():
            # Labels and counts are integers on purpose; MLflow's hint about NaN-free ints is noise here.
            warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
            warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
            ds = mlflow.data.from_pandas(getattr(trained.splits, name)[keep], source=source,
                                         targets=project.label_column, name=f"{project.name}_{name}")
            mlflow.log_input(ds, context=context)
    mlflow.log_dict(datasets, "datasets/sources.json")


def _log_frame(frame: pd.DataFrame, artifact: str, tmp: str) -> None:
    from pathlib import Path

    import mlflow

    local = Path(tmp) / Path(artifact).name
    frame.to_parquet(local, index=False)
    mlflow.log_artifact(str(local), artifact_path=str(Path(artifact).parent))


def _log_model(trained: TrainedModel) -> Any:
    """The model in MLflow's skops format with its signature, input example and pinned requirements.

    The signature's output is what the task predicts (:func:`mlops_provider.domain.metrics.predict`); a
    classifier's pyfunc serves ``predict_proba``, a regressor's ``predict``.
    """
    import mlflow.sklearn
    from mlflow.models import infer_signature

    holdout = trained.features["holdout"].head(200)
    signature = infer_signature(holdout, predict(trained.model, holdout, trained.task))
    with quiet_warnings():
        return mlflow.sklearn.log_model(
            trained.model, name="model", signature=signature, input_example=trained.features["train"].head(5),
            pyfunc_predict_fn="predict" if trained.task == "regression" else "predict_proba",
            skops_trusted_types=_skops_trusted_types(trained.model), pip_requirements=pip_requirements(),
        )


def log_training_run(project: ProjectConfig, trained: TrainedModel, *, client: MlflowClient, experiment_id: str,
                     tracking_uri: str, registry_uri: str | None, run_tags: dict[str, Any],
                     dataset_sources: list[str], reference: pd.DataFrame, seed: int) -> dict[str, Any]:
    """Log ``trained`` as one MLflow run (params, metrics, plots, datasets, holdout, monitoring reference,
    model), register it as a new version of the project's model and alias it ``challenger``
    (under the model lock: :func:`set_challenger`)."""
    import mlflow

    from mlops_provider.domain.training import figures

    model_name, primary = project.model_name, project.promotion["primary_metric"]
    tags = {k: (v if isinstance(v, str) else json.dumps(v, default=str)) for k, v in run_tags.items() if v is not None}
    tags.update({"project": project.name, "mlops.stage": "train"})
    # Named by the day the run trains as of (its training_as_of tag), not by its last labelled event day.
    run_name = f"{project.name}-{run_tags.get('training_as_of') or trained.splits.days['holdout'][-1].isoformat()}"
    with tracking(tracking_uri, registry_uri), tempfile.TemporaryDirectory(prefix="mlops-train-") as tmp, \
            mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags) as run:
        log.info("MLflow run %s (experiment %s) at %s", run.info.run_id, experiment_id, _safe_uri(tracking_uri))
        mlflow.log_params(trained.run_params(project, seed))
        mlflow.log_metrics(trained.metrics)
        mlflow.log_metrics({f"baseline_{k}": v for k, v in trained.baseline_metrics.items()})
        for step, value in enumerate(trained.trial_scores):
            mlflow.log_metric(f"hpo_validation_{trained.search_metric}", value, step=step)
        _log_datasets(project, trained, dataset_sources)
        for path, fig in figures(trained.labels["holdout"], {"model": trained.scores, "baseline": trained.baseline_scores},
                                 trained.threshold, trained.importance, task=trained.task,
                                 classes=trained.classes).items():
            mlflow.log_figure(fig, path)
        mlflow.log_dict({k: float(v) for k, v in trained.importance.items()}, "feature_importance.json")
        _log_frame(trained.splits.holdout[trained.logged_columns(project)], HOLDOUT_ARTIFACT, tmp)
        holdout_uri = mlflow.get_artifact_uri(HOLDOUT_ARTIFACT)
        _log_frame(reference, REFERENCE_ARTIFACT, tmp)
        info = _log_model(trained)
        version = mlflow.register_model(
            info.model_uri, model_name,
            tags={"run_id": run.info.run_id, "config_hash": project.config_hash(),
                  f"baseline_{primary}": str(trained.baseline_metrics[primary]),
                  "airflow_run_id": str(run_tags.get("airflow_run_id") or ""), "project": project.name,
                  "trigger": str(tags.get("trigger") or "")},
        )
        set_challenger(client, model_name, version.version)
        mlflow.set_tags({"registered_model": model_name, "registered_version": str(version.version),
                         "holdout_uri": holdout_uri})
    log.info("registered %s v%s as challenger (holdout %s %.4f vs baseline %.4f)", model_name, version.version,
             primary, trained.metrics[primary], trained.baseline_metrics[primary])
    return {"run_id": run.info.run_id, "experiment_id": experiment_id, "model_name": model_name,
            "version": str(version.version), "metrics": trained.metrics,
            "baseline_metrics": trained.baseline_metrics, "holdout_uri": holdout_uri, "reused": False}
