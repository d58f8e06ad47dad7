"""Failpoints for the fault-injection tests (the etcd/gofail idea): ``hit(name)`` marks a critical point.

It does nothing unless the environment variable ``MLOPS_FAILPOINTS`` names the point, as
``name=action[@n]`` items separated by commas; ``@n`` fires on the n-th hit of that name in this
process (default: the first). Actions:

``kill``           SIGKILL this process: a worker that dies mid-task (no ``finally`` runs).
``raise[:Name]``   raise the builtin exception ``Name`` (default ``ConnectionError``): a service that refuses.
``pause``          write ``<name>.reached`` into the directory ``MLOPS_FAILPOINTS_DIR`` and wait (60 s at
                   most) for ``<name>.resume`` there, so a test can cut a service while the stage is at the point.

Production never sets the variable; an unset variable costs one dictionary lookup per hit.
"""

from __future__ import annotations

import builtins
import os
import signal
import time
from pathlib import Path

_hits: dict[str, int] = {}


def hit(name: str) -> None:
    """The critical point ``name``: act as ``MLOPS_FAILPOINTS`` says, if it names it."""
    spec = os.environ.get("MLOPS_FAILPOINTS")
    if not spec:
        return
    for item in spec.split(","):
        key, _, action = item.strip().partition("=")
        if key != name:
            continue
        action, _, nth = action.partition("@")
        _hits[name] = _hits.get(name, 0) + 1
        if _hits[name] == int(nth or 1):
            _fire(name, action or "kill")
        return


def _fire(name: str, action: str) -> None:
    kind, _, arg = action.partition(":")
    if kind == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif kind == "raise":
        exc = getattr(builtins, arg or "ConnectionError")
        raise exc(f"failpoint {name}: injected {exc.__name__}")
    elif kind == "pause":
        directory = Path(os.environ["MLOPS_FAILPOINTS_DIR"])
        (directory / f"{name}.reached").touch()
        deadline = time.monotonic() + 60
        while not (directory / f"{name}.resume").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    else:
        raise ValueError(f"failpoint {name}: unknown action {action!r} (kill, raise[:Name], pause)")
