"""Seeded rows for any project YAML: values follow the declared types, ranges and categories."""

from __future__ import annotations

import datetime as dt
import zlib

import numpy as np
import pandas as pd


def generate(project, day: dt.date, rows: int, *, covariate_drift: bool = False, concept_drift: bool = False) -> pd.DataFrame:
    """A day of rows for ``project``; the label depends on the numeric columns so a model can learn it."""
    seed = zlib.crc32(f"{project.name}{day}{covariate_drift}{concept_drift}".encode())
    rng = np.random.default_rng(seed)
    data: dict[str, object] = {}
    score = np.zeros(rows)
    for name, spec in project.columns.items():
        kind = spec["type"]
        if name == project.record_id:
            data[name] = [f"{project.name[:1].upper()}{day:%Y%m%d}-{i:07d}" for i in range(rows)]
        elif name == project.entity_key:
            data[name] = [f"E{i:06d}" for i in rng.integers(0, 2000, size=rows)]
        elif name == project.event_timestamp:
            data[name] = pd.Timestamp(day) + pd.to_timedelta(np.sort(rng.integers(0, 86400, rows)), unit="s")
        elif name == project.label_column:
            continue
        elif kind in ("float", "integer"):
            lo, hi = spec.get("min", 0), spec.get("max", 100)
            values = rng.beta(2, 5, size=rows) * (hi - lo) + lo
            if covariate_drift:
                values = np.clip(values * 1.8, lo, hi)
            score += (values - lo) / max(hi - lo, 1e-9)
            data[name] = np.round(values).astype(int) if kind == "integer" else np.round(values, 3)
        elif kind == "category":
            allowed = spec["allowed"]
            p = np.linspace(1, 2, len(allowed))[::-1] if covariate_drift else np.linspace(1, 2, len(allowed))
            values = rng.choice(allowed, size=rows, p=p / p.sum())
            score += (values == allowed[0]) * 0.8
            data[name] = values
        elif kind == "boolean":
            data[name] = rng.random(rows) < 0.5
        else:
            data[name] = [f"v{i}" for i in rng.integers(0, 50, size=rows)]
    logit = 3.0 * (score - score.mean()) - 2.0
    if concept_drift:
        logit = -logit - 4.0
    data[project.label_column] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame(data)
