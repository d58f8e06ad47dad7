"""Feast objects of the fraud project for the Feast CLI, built from include/projects/fraud.yaml.

``feast apply`` collects Feast objects from module globals, so each object built by
``mlops_provider.core.feature_repo.feature_definitions`` is bound to a global named after it.
"""

from __future__ import annotations

import os

from mlops_provider.core import state
from mlops_provider.core.config import load_project
from mlops_provider.core.feature_repo import feature_definitions
from mlops_provider.core.lake import Lake

os.environ.setdefault("FEAST_USAGE", "False")

PROJECT = load_project("fraud")
# feast apply imports this file before it opens the registry and online store that live here.
(state.feast_dir() / PROJECT.name).mkdir(parents=True, exist_ok=True)

for _obj in feature_definitions(PROJECT, Lake()):
    globals()[f"{type(_obj).__name__.lower()}_{_obj.name}"] = _obj
del _obj
