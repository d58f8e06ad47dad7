"""Point-in-time training sets: labelled events joined with the features known at each event's time.

The label of an event arrives ``label.delay_days`` later, in the labels partition of its arrival day.
A training set "as of" day D holds the events of ``[D - window + 1, D]`` whose label arrived by the
end of D; each row gets its features from Feast ``get_historical_features`` at the event's own
timestamp, so no aggregate computed after the event (let alone after its label) reaches training.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlops_provider.domain import features as F
from mlops_provider.domain import layout as L
from mlops_provider.domain.layout import as_date, days, labels_table
from mlops_provider.exceptions import FeatureDefinitionError, TrainingDataError
from mlops_provider.io import feast_repo as R

if TYPE_CHECKING:
    import pandas as pd

    from mlops_provider.config.project import ProjectConfig
    from mlops_provider.io.lake import Lake

log = logging.getLogger(__name__)

LABEL_TIMESTAMP = "label_timestamp"


def model_feature_columns(project: ProjectConfig) -> tuple[list[str], list[str]]:
    """``(feature columns, categorical ones)`` of the project's model, as the feature service returns them."""
    names = R.feature_names(project)
    categorical = set(project.feature_spec.categorical_names(project.columns))
    return names, [n for n in names if n in categorical]


def monitored_features(project: ProjectConfig) -> list[str]:
    """The model features whose drift monitoring checks (``monitoring.features``, default all).

    Window counts and sums grow while an entity's history fills up, so a young deployment (or a
    simulation) sees them "drift" every day; a project can restrict monitoring to stable features.
    """
    names, _ = model_feature_columns(project)
    chosen = project.monitoring.get("features") or names
    unknown = [c for c in chosen if c not in names]
    if unknown:
        from mlops_provider.exceptions import ProjectConfigError

        raise ProjectConfigError(f"{project.path}: key 'monitoring.features': {unknown} are not model features "
                                 f"(choose from {names})")
    return list(chosen)


@dataclass
class TrainingSet:
    """Labelled, point-in-time-correct rows plus where they came from."""

    frame: pd.DataFrame
    feature_columns: list[str]
    categorical_columns: list[str]
    sources: list[str] = field(default_factory=list)
    event_days: list[dt.date] = field(default_factory=list)


def labelled_events(project: ProjectConfig, lake: Lake, first_day: dt.date, last_day: dt.date) -> pd.DataFrame:
    """Events of ``[first_day, last_day]`` whose label arrived by the end of ``last_day``.

    Columns: record id, every entity key, ``event_timestamp`` (UTC), the label and ``label_timestamp``.
    Quarantined days have no records partition, so their labels find nothing to join and drop out.
    """
    import pandas as pd

    rid, ts, label = project.record_id, project.event_timestamp, project.label_column
    keys = project.entity_keys
    events = lake.read_range(L.records_table(project), first_day, last_day, columns=list(dict.fromkeys([rid, *keys, ts])))
    labels = lake.read_range(labels_table(project), first_day, last_day, columns=[rid, label, LABEL_TIMESTAMP])
    if events.empty or labels.empty:
        return pd.DataFrame(columns=[rid, *keys, F.EVENT_TIMESTAMP, label, LABEL_TIMESTAMP])
    labels = labels.drop_duplicates(rid, keep="last")
    frame = events.merge(labels, on=rid, how="inner", validate="one_to_one")
    frame[F.EVENT_TIMESTAMP] = utc_timestamps(frame[ts])
    frame[LABEL_TIMESTAMP] = utc_timestamps(frame[LABEL_TIMESTAMP])
    if ts != F.EVENT_TIMESTAMP:
        frame = frame.drop(columns=[ts])
    # A label stamped before its event is a source bug; it must not teach the model anything.
    broken = frame[LABEL_TIMESTAMP] < frame[F.EVENT_TIMESTAMP]
    if broken.any():
        log.warning("dropping %d labels stamped before their event", int(broken.sum()))
        frame = frame[~broken]
    for column in (*keys, rid):
        frame[column] = frame[column].astype(str)
    return frame.sort_values(F.EVENT_TIMESTAMP, kind="stable").reset_index(drop=True)


def build_training_set(project: ProjectConfig, lake: Lake, feature_store: Any, as_of: str | dt.date,
                       window_days: int | None = None) -> TrainingSet:
    """The labelled events of the ``window_days`` up to ``as_of`` with their point-in-time features.

    ``feature_store`` is a :class:`~mlops_provider.io.feature_store.ProjectFeatureStore` (anything with
    ``get_historical_features(entity_df)``).
    """
    as_of = as_date(as_of)
    window_days = int(window_days or project.model["training_window_days"])
    first = as_of - dt.timedelta(days=window_days - 1)
    events = labelled_events(project, lake, first, as_of)
    if events.empty:
        raise TrainingDataError(
            f"{project.name}: no labelled events in {first}..{as_of}: records partitions "
            f"{lake.uri(lake.root + '/' + L.records_table(project))} and labels (delay "
            f"{project.label_delay_days} days) must overlap; ingest more days first"
        )
    label = project.label_column
    entity_df = events[list(dict.fromkeys([*project.entity_keys, project.record_id, F.EVENT_TIMESTAMP, label,
                                           LABEL_TIMESTAMP]))]
    frame = feature_store.get_historical_features(entity_df)
    features, categorical = model_feature_columns(project)
    missing = [c for c in features if c not in frame.columns]
    if missing:
        raise FeatureDefinitionError(
            f"{project.name}: the feature service returned no columns {missing} although the project declares them; "
            f"run the features DAG ({project.dag_id('features')}) to re-apply the Feast definitions, and report it "
            "if it persists")
    if project.event_timestamp != F.EVENT_TIMESTAMP:
        frame[project.event_timestamp] = frame[F.EVENT_TIMESTAMP]
    event_days = sorted({d.date() for d in frame[F.EVENT_TIMESTAMP]})
    sources = []
    tables = [L.entity_table(project, e.name) for e in project.feature_spec.entities if project.feature_spec.of(e)]
    for table in (L.record_table(project), *tables, labels_table(project)):
        sources += [lake.uri(lake.partition_path(table, d)) for d in days(first, as_of) if lake.exists(table, d)]
    log.info("%s training set as of %s: %d labelled events over %d days (%s..%s), %d features",
             project.name, as_of, len(frame), len(event_days), event_days[0], event_days[-1], len(features))
    return TrainingSet(frame=frame, feature_columns=features, categorical_columns=categorical,
                       sources=sources, event_days=event_days)


def utc_timestamps(series: pd.Series) -> pd.Series:
    """Timestamps as tz-aware UTC (naive values are taken as UTC)."""
    import pandas as pd

    series = pd.to_datetime(series)
    return series.dt.tz_localize("UTC") if series.dt.tz is None else series.dt.tz_convert("UTC")
