"""Lake layout: run ids as path segments."""

from __future__ import annotations

import pytest
from mlops_provider.domain.layout import safe_run_id


@pytest.mark.parametrize("run_id", ["..", ".", "", "...", "../..", "./x", "/", ".hidden"])
def test_safe_run_id_never_names_a_parent_current_or_hidden_directory(run_id):
    """Was: ``..`` was kept, so a quarantine path ``dt=D/..`` pointed at the project's quarantine root."""
    segment = safe_run_id(run_id)
    assert segment and segment not in (".", "..") and not segment.startswith(".") and "/" not in segment


def test_safe_run_id_keeps_ordinary_run_ids():
    assert safe_run_id("scheduled__2024-01-10T00:00:00+00:00") == "scheduled__2024-01-10T00_00_00_00_00"
    assert safe_run_id("manual__rerun.2") == "manual__rerun.2"
