"""What every operator of the provider shares, written once (as ``AwsBaseOperator`` / ``BaseSQLOperator`` do).

* **Domain errors mapped to Airflow's retry semantics.** The layers below the operators (``config``,
  ``domain``, ``io``, ``stages``) raise plain Python errors (:mod:`mlops_provider.exceptions`). An error
  whose class says ``retryable = False`` (bad input, a bad config, contradictory params) becomes
  :class:`~airflow.sdk.exceptions.AirflowFailException` here, so Airflow fails the task at once instead of
  retrying what cannot succeed; every other error is retried.
* **A project and its connections.** :class:`ProjectBaseOperator` takes the keyword-only ``project_name``
  and ``lake_conn_id``; :class:`MlflowBaseOperator` adds ``mlflow_conn_id``, :class:`FeastBaseOperator`
  ``feast_conn_id`` (an operator needing both derives from both). Each connection id defaults to its
  hook's ``default_conn_name``. The project config, the hooks and what they build (lake, report store,
  feature store) are cached properties: nothing is built in ``__init__`` (a DAG file constructs every
  operator on each parse, and Airflow deep-copies and serializes operators), only on first use in
  ``execute``.
* **Peak memory and CPU time.** After a successful ``execute``, ``post_execute`` logs ``peak memory: N MiB;
  CPU time: S s`` (the task process's ``ru_maxrss`` and user + system time) and pushes them as the XComs
  ``peak_rss_mib`` and ``cpu_seconds``, so a run's memory and cores per task can be read from the REST API
  (``bench/stack_scale.py`` does).
* **Asset events and days.** :meth:`MlopsBaseOperator.emit_asset_events` sets the ``extra`` of every
  outlet's event; :meth:`ProjectBaseOperator.each_day` runs the work of each day of a comma-separated
  ``day`` template (asset events merged into one run), oldest first.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.sdk import BaseBranchOperator, BaseOperator

from mlops_provider.hooks.coordination import CoordinationHook, task_scope
from mlops_provider.hooks.feast import FeastHook
from mlops_provider.hooks.lake import LakeHook
from mlops_provider.hooks.mlflow import MlflowHook

if TYPE_CHECKING:
    from airflow.sdk import Context

    from mlops_provider.config.project import ProjectConfig
    from mlops_provider.io.feature_store import ProjectFeatureStore
    from mlops_provider.io.lake import Lake
    from mlops_provider.operators.lineage import LineageDataset

T = TypeVar("T")


# Errors that the same input and code raise again on every try (a bug, or data no check caught): a retry
# only repeats them and pages on-call a second time. Outages surface as OSError, ConnectionError,
# timeouts or the client libraries' own errors, none of which derive from these.
DETERMINISTIC_ERRORS: tuple[type[BaseException], ...] = (
    TypeError, KeyError, AttributeError, IndexError, ZeroDivisionError, NotImplementedError, ValueError,
)


def fail_fast_on_fatal_errors(method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` with errors a retry cannot fix raised as ``AirflowFailException``.

    Those are domain errors whose class says ``retryable = False`` (same message) and
    :data:`DETERMINISTIC_ERRORS` (the message says so and what to do); every other error is retried.
    ``method`` runs with the coordination state of the ``mlops_state_default`` connection (or the
    operator's ``state_conn_id``) as the io layer's default: every lock and alert marker of the task
    lives where every other worker's does (:func:`mlops_provider.hooks.coordination.task_scope`).
    """

    @functools.wraps(method)
    def wrapper(self: Any, context: Any, *args: Any, **kwargs: Any) -> Any:
        from mlops_provider.exceptions import MlopsError

        try:
            with task_scope(getattr(self, "state_conn_id", CoordinationHook.default_conn_name)):
                return method(self, context, *args, **kwargs)
        except MlopsError as exc:
            if exc.retryable:
                raise
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(str(exc)) from exc
        except DETERMINISTIC_ERRORS as exc:
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(
                f"{type(exc).__name__}: {exc} -- the same input fails the same way on every try, so the task "
                "is not retried. The traceback above shows where; fix the data or the code, then clear the task."
            ) from exc

    return wrapper


#: XCom key of the task process's peak resident memory in MiB, pushed after every successful execute.
PEAK_RSS_KEY = "peak_rss_mib"
#: XCom key of the CPU time (user + system, every thread) the task process used, in seconds: over the task's
#: duration, how many cores it kept busy (what caps the speed-up of more workers on the same cores).
CPU_SECONDS_KEY = "cpu_seconds"


def peak_rss_mib() -> float:
    """The peak resident set size of this process so far, in MiB (``ru_maxrss``: KiB on Linux, bytes on macOS)."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)


def cpu_seconds() -> float:
    """User + system CPU time of this process (all its threads) and its waited-for children so far."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return round(own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime, 2)


class _PeakMemoryReport:
    """``post_execute``: log the task process's peak memory and CPU time, push them as the XComs
    ``peak_rss_mib`` and ``cpu_seconds``."""

    def post_execute(self, context: Any, result: Any = None) -> None:
        super().post_execute(context, result)  # type: ignore[misc]
        peak, cpu = peak_rss_mib(), cpu_seconds()
        self.log.info("peak memory: %.0f MiB; CPU time: %.1f s", peak, cpu)  # type: ignore[attr-defined]
        try:
            context["ti"].xcom_push(key=PEAK_RSS_KEY, value=peak)
            context["ti"].xcom_push(key=CPU_SECONDS_KEY, value=cpu)
        except Exception as exc:  # a figure for reading: never fail a task whose work is done over it
            self.log.warning("peak memory / CPU time not recorded as XComs: %s", exc)  # type: ignore[attr-defined]


class _DomainErrorMapping:
    """Wraps the ``execute`` (``choose_branch``, a sensor's ``poke``) a subclass defines with :func:`fail_fast_on_fatal_errors`."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in ("execute", "choose_branch", "poke"):
            if name in cls.__dict__:
                setattr(cls, name, fail_fast_on_fatal_errors(cls.__dict__[name]))


class MlopsBaseOperator(_PeakMemoryReport, _DomainErrorMapping, BaseOperator):
    """Base of the provider's operators: domain errors mapped once, asset events emitted one way."""

    def __init__(self, **kwargs: Any) -> None:
        # Defined (not inherited) on purpose: with mixins ahead of BaseOperator, Airflow's operator metaclass
        # copies BaseOperator.__init__ into this class, and ``.partial()`` then takes that signature's
        # ``inlets=None`` / ``outlets=None`` as this class's defaults instead of ``[]``: every mapped task
        # failed before executing ("'NoneType' object is not iterable" building its context).
        super().__init__(**kwargs)

    def emit_asset_events(self, context: Context, extra: dict[str, Any]) -> dict[str, Any]:
        """Give the asset event of every outlet ``extra`` (what downstream runs read); return ``extra``.

        Downstream DAGs find the day(s) to process in it (``extra["day"]`` / ``extra["days"]``, see
        :func:`mlops_provider.dag_factory.days_to_process`). Without outlets nothing is emitted.
        """
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra = extra
        return extra

    # -- lineage (OpenLineage, operators/lineage.py) ---------------------------------------------------
    def lineage_input(self, *datasets: LineageDataset) -> None:
        """Record datasets this task read (reported by :meth:`get_openlineage_facets_on_complete`)."""
        self._lineage_record("inputs", datasets)

    def lineage_output(self, *datasets: LineageDataset) -> None:
        """Record datasets this task wrote."""
        self._lineage_record("outputs", datasets)

    def _lineage_record(self, side: str, datasets: Sequence[LineageDataset]) -> None:
        from mlops_provider.operators.lineage import PARTITION_FACET, LineageDataset

        recorded: dict[str, dict[tuple[str, str], LineageDataset]] = self.__dict__.setdefault(
            "_mlops_lineage", {"inputs": {}, "outputs": {}})
        for dataset in datasets:
            key = (dataset.namespace, dataset.name)
            before = recorded[side].get(key)
            if before is not None:  # the same table on several days of one run: one dataset, every day
                facets = {**before.facets, **dataset.facets}
                if PARTITION_FACET in before.facets and PARTITION_FACET in dataset.facets:
                    days = before.facets[PARTITION_FACET].get("days") or [before.facets[PARTITION_FACET]["day"]]
                    facets[PARTITION_FACET] = {**dataset.facets[PARTITION_FACET],
                                               "days": [*days, dataset.facets[PARTITION_FACET]["day"]]}
                rows = None if before.rows is None and dataset.rows is None else (before.rows or 0) + (dataset.rows or 0)
                dataset = LineageDataset(dataset.namespace, dataset.name, facets, rows)
            recorded[side][key] = dataset

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """The inputs and outputs this task recorded, as OpenLineage datasets (called by the OpenLineage
        listener on the operator that ran, when an ``[openlineage]`` transport is configured)."""
        from airflow.providers.openlineage.extractors import OperatorLineage
        from openlineage.client.event_v2 import InputDataset, OutputDataset
        from openlineage.client.facet_v2 import DatasetFacet
        from openlineage.client.facet_v2 import output_statistics_output_dataset as statistics

        recorded = self.__dict__.get("_mlops_lineage", {"inputs": {}, "outputs": {}})

        def facets(dataset: LineageDataset) -> dict[str, Any]:
            return {name: DatasetFacet().with_additional_properties(**values) for name, values in dataset.facets.items()}

        inputs = [InputDataset(namespace=d.namespace, name=d.name, facets=facets(d)) for d in recorded["inputs"].values()]
        outputs = [
            OutputDataset(namespace=d.namespace, name=d.name, facets=facets(d),
                          outputFacets={} if d.rows is None else
                          {"outputStatistics": statistics.OutputStatisticsOutputDatasetFacet(rowCount=d.rows)})
            for d in recorded["outputs"].values()
        ]
        return OperatorLineage(inputs=inputs, outputs=outputs)


class MlopsBaseBranchOperator(_PeakMemoryReport, _DomainErrorMapping, BaseBranchOperator):
    """Base of the provider's branching operators."""

    def __init__(self, **kwargs: Any) -> None:  # as MlopsBaseOperator.__init__: mapped, inlets/outlets stay []
        super().__init__(**kwargs)


class ProjectBaseOperator(MlopsBaseOperator):
    """An operator working on one project's lake: ``project``, ``lake`` and ``reports`` built on first use.

    :param project_name: the project (``include/projects/<name>.yaml``); templated in every subclass.
    :param lake_conn_id: the ``mlops_lake`` connection (lake and report store); without it, the embedded
        default under ``MLOPS_HOME``.
    """

    template_fields: Sequence[str] = ("project_name",)

    def __init__(self, *, project_name: str, lake_conn_id: str = LakeHook.default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.project_name = project_name
        self.lake_conn_id = lake_conn_id

    @functools.cached_property
    def project(self) -> ProjectConfig:
        """The validated project config (read when first used, after ``project_name`` was rendered)."""
        from mlops_provider.config.project import load_project

        return load_project(self.project_name)

    @functools.cached_property
    def lake_hook(self) -> LakeHook:
        return LakeHook(lake_conn_id=self.lake_conn_id)

    @functools.cached_property
    def lake(self) -> Lake:
        """The data lake of the ``lake_conn_id`` connection."""
        return self.lake_hook.get_conn()

    @functools.cached_property
    def reports(self) -> Lake:
        """The report store (validation results, drift reports, retrain requests)."""
        return self.lake_hook.get_reports()

    @staticmethod
    def split_days(days: str) -> list[str]:
        """The days of a rendered ``day`` template (``"2024-01-02,2024-01-03"``), oldest first, unique."""
        from mlops_provider.dag_factory import split_days

        return split_days(days)

    def each_day(self, days: str, work: Callable[[str], T]) -> list[T]:
        """``work(day)`` for every day of ``days`` (see :meth:`split_days`), oldest first; their results.

        Airflow merges asset events queued while a downstream DAG was busy into one run, whose ``day``
        template then names several days: each must be processed, oldest first, since a day may read the
        days before it (window aggregates).
        """
        chosen = self.split_days(days)
        results = []
        for number, day in enumerate(chosen, 1):
            if len(chosen) > 1:
                self.log.info("%s: day %s (%d of %d)", self.project_name, day, number, len(chosen))
            results.append(work(day))
        return results


class MlflowBaseOperator(ProjectBaseOperator):
    """A project operator that uses MLflow (tracking server and model registry).

    :param mlflow_conn_id: the ``mlflow`` connection; without it, the embedded SQLite store.
    """

    def __init__(self, *, mlflow_conn_id: str = MlflowHook.default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mlflow_conn_id = mlflow_conn_id

    @functools.cached_property
    def mlflow_hook(self) -> MlflowHook:
        return MlflowHook(mlflow_conn_id=self.mlflow_conn_id)


class FeastBaseOperator(ProjectBaseOperator):
    """A project operator that uses the project's feature store (Feast).

    :param feast_conn_id: the ``feast`` connection; without it, the embedded stores under ``MLOPS_HOME``.
    """

    def __init__(self, *, feast_conn_id: str = FeastHook.default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.feast_conn_id = feast_conn_id

    @functools.cached_property
    def feature_store(self) -> ProjectFeatureStore:
        """The project's feature store on the lake, as the ``feast_conn_id`` connection configures it.

        The one place the operators build it.
        """
        return FeastHook(self.project, feast_conn_id=self.feast_conn_id, lake=self.lake).feature_store()
