"""``[core] hostname_callable`` of the no-Docker stack: each Celery worker reports its own name.

Both workers of the stack run on one machine; without this every task try would record the same host
name and nobody could tell which worker ran it. ``MLOPS_STACK_HOSTNAME`` is set per worker by
``scripts/stack.py``; other components fall back to the machine's name.
"""

from __future__ import annotations

import os
import socket


def hostname() -> str:
    return os.environ.get("MLOPS_STACK_HOSTNAME") or socket.getfqdn()
