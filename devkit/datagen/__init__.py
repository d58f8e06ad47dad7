"""Deterministic sample data for the bundled projects, with switches for bad-data and drift scenarios."""

from devkit.datagen.landing import SCENARIOS, write_landing_day

__all__ = ["SCENARIOS", "write_landing_day"]
