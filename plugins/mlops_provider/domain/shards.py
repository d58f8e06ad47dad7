"""A day split into shards: how a partition's row groups are grouped, and where shard results are staged.

One concept for every sharded stage (scoring, features, monitoring statistics): a *plan* splits a day
into shards, Airflow's dynamic task mapping runs one task per shard, each shard writes its result to a
staging table of its own (replaced whole on a retry), and one commit task publishes the day's partition
once every shard is there, then drops the staging tables. Plans are JSON (they travel as XComs).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlops_provider.config.project import ProjectConfig


def new_plan_id() -> str:
    """A fresh id per plan: a re-planned day never reads a previous plan's shards."""
    import uuid

    return uuid.uuid4().hex[:12]


def row_group_shards(row_group_rows: list[int], shard_rows: int) -> list[dict[str, Any]]:
    """Consecutive whole row groups of about ``shard_rows`` rows each, in file order.

    Each shard is ``{"index", "row_groups", "start_row", "rows"}``; ``start_row`` is the shard's first
    row in the file, so shards concatenated by index give the file's row order back.
    """
    shards: list[dict[str, Any]] = []
    groups: list[int] = []
    rows = start = 0
    for i, n in enumerate(row_group_rows):
        groups.append(i)
        rows += n
        if rows >= shard_rows or i == len(row_group_rows) - 1:
            shards.append({"index": len(shards), "row_groups": groups, "start_row": start, "rows": rows})
            start, groups, rows = start + rows, [], 0
    return shards


def row_group_rows(shard_rows: int) -> int:
    """Rows per Parquet row group of a records partition: an eighth of a shard (shards are whole row
    groups, so a day splits at this granularity), at most pyarrow's default of 1,048,576 rows."""
    return max(10_000, min(1_048_576, int(shard_rows) // 8))


def shard_count(rows: int, shard_rows: int) -> int:
    """How many shards a day of ``rows`` rows gets: 1 up to ``shard_rows``, then one per ``shard_rows``."""
    return max(1, -(-int(rows) // max(1, int(shard_rows))))


def staging_dir(project: ProjectConfig, stage: str, day: dt.date) -> str:
    """Where the shards of ``stage`` (``predictions``, ``features``, ``monitoring``) stage for ``day``."""
    return f"_shards/{project.name}/{stage}/{day.isoformat()}"


def shard_table(project: ProjectConfig, stage: str, day: dt.date, plan_id: str, index: int, part: str = "") -> str:
    """The staging table of shard ``index`` of plan ``plan_id`` (``part`` names one of several outputs)."""
    return f"{staging_dir(project, stage, day)}/{plan_id}/{index:05d}" + (f"/{part}" if part else "")
