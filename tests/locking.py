"""What the lock tests of both coordinations share: hold a lock in a child process, read back who held it when."""

from __future__ import annotations

import os
import time


def hold_lock(coordination, name: str, log_path, hold: float, *, timeout: float, ready=None) -> None:
    """Take ``name``'s lock of ``coordination``, log start and end (pid, monotonic time) around ``hold`` seconds."""
    with coordination.lock(name, timeout=timeout):
        if ready is not None:
            ready.set()
        with open(log_path, "a") as out:
            out.write(f"start {os.getpid()} {time.monotonic()}\n")
        time.sleep(hold)
        with open(log_path, "a") as out:
            out.write(f"end {os.getpid()} {time.monotonic()}\n")


def intervals(log_path) -> list[tuple[float, float]]:
    """The (start, end) of every holder logged by :func:`hold_lock`, in start order."""
    events = [line.split() for line in log_path.read_text().splitlines()]
    starts = {pid: float(t) for kind, pid, t in events if kind == "start"}
    ends = {pid: float(t) for kind, pid, t in events if kind == "end"}
    return sorted((starts[pid], ends[pid]) for pid in starts)
