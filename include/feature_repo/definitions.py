"""Feast objects for the Feast CLI, built from the project YAML named by ``project:`` in feature_store.yaml.

``feast apply`` collects Feast objects from module globals, so each object built by
``mlops_provider.io.feast_repo.feature_definitions`` is bound to a global named after it.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from mlops_provider.config import paths
from mlops_provider.config.project import load_project
from mlops_provider.io.feast_repo import feature_definitions
from mlops_provider.io.lake import Lake

os.environ.setdefault("FEAST_USAGE", "False")

# One source of truth for which project this repository serves: feature_store.yaml's `project:`.
PROJECT = load_project(yaml.safe_load((Path(__file__).parent / "feature_store.yaml").read_text())["project"])
# feast apply imports this file before it opens the registry and online store that live here.
(paths.feast_dir() / PROJECT.name).mkdir(parents=True, exist_ok=True)

for _obj in feature_definitions(PROJECT, Lake()):
    globals()[f"{type(_obj).__name__.lower()}_{_obj.name}"] = _obj
del _obj
