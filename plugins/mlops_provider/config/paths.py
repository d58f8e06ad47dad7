"""Where the platform keeps its state: one directory (``MLOPS_HOME``) for the embedded default."""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parents[1]


def repo_root() -> Path:
    """The checkout the DAGs and ``include/`` live in (``MLOPS_REPO_ROOT`` overrides)."""
    if env := os.environ.get("MLOPS_REPO_ROOT"):
        return Path(env).resolve()
    candidate = _PACKAGE_DIR.parents[1]  # plugins/mlops_provider -> checkout (editable install)
    if (candidate / "include" / "projects").is_dir():
        return candidate
    return Path.cwd()


def mlops_home() -> Path:
    """Root of all embedded state; ``rm -rf`` of it resets everything."""
    return Path(os.environ.get("MLOPS_HOME") or repo_root() / ".mlops").resolve()


def projects_dir() -> Path:
    return Path(os.environ.get("MLOPS_PROJECTS_DIR") or repo_root() / "include" / "projects")


def include_dir() -> Path:
    return repo_root() / "include"


def lake_uri() -> str:
    """Root URI of the lake: a local directory by default, ``s3://bucket/prefix`` in production."""
    return os.environ.get("MLOPS_LAKE_URI") or (mlops_home() / "lake").as_uri()


def reports_uri() -> str:
    return os.environ.get("MLOPS_REPORTS_URI") or (mlops_home() / "reports").as_uri()


def outbox_dir() -> Path:
    return mlops_home() / "outbox"


def feast_dir() -> Path:
    return mlops_home() / "feast"


def mlflow_tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{mlops_home() / 'mlflow' / 'mlflow.db'}"


def mlflow_artifact_root() -> str:
    return os.environ.get("MLOPS_MLFLOW_ARTIFACT_ROOT") or (mlops_home() / "mlflow" / "artifacts").as_uri()


def landing_dir() -> Path:
    return mlops_home() / "landing"


def gx_dir() -> Path:
    return mlops_home() / "gx"
