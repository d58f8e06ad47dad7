"""Celery configuration of the no-Docker stack's workers: Airflow's defaults plus warm imports.

A Celery worker forks a pool process, which forks the Airflow task supervisor, which forks the task:
modules imported here, in the worker's main process, are inherited by every task instead of being
imported again by each one (Great Expectations, Feast, MLflow, pandas... cost seconds of CPU per task).
Set ``MLOPS_STACK_PRELOAD=0`` to turn it off. ``[celery] celery_config_options`` points here only in
the workers' environment, so the scheduler and the API server stay lean.
"""

from __future__ import annotations

import importlib
import logging
import os
import time

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

CELERY_CONFIG = dict(DEFAULT_CELERY_CONFIG)

PRELOAD = ("pandas", "pyarrow", "pyarrow.parquet", "pyarrow.fs", "great_expectations", "feast", "mlflow",
           "sklearn.ensemble", "evidently", "mlops_provider.stages.ingest", "mlops_provider.io.validation",
           "mlops_provider.domain.features", "mlops_provider.hooks.feast")

if os.environ.get("MLOPS_STACK_PRELOAD", "1") not in ("0", "false", "False", ""):
    began = time.monotonic()
    loaded = []
    for name in PRELOAD:
        try:
            importlib.import_module(name)
            loaded.append(name)
        except Exception as exc:  # a missing optional module must not keep the worker from starting
            logging.getLogger(__name__).warning("preload of %s failed: %s", name, exc)
    logging.getLogger(__name__).warning("stack worker preloaded %d modules in %.1fs", len(loaded),
                                        time.monotonic() - began)
