"""One entry per pipeline stage (``run_*``), composed from ``domain`` and ``io``; no Airflow here."""

from collections.abc import Callable
from typing import TypeVar

_Main = TypeVar("_Main")
_Side = TypeVar("_Side")


def beside(side: Callable[[], _Side], main: Callable[[], _Main], *, name: str) -> tuple[_Main, _Side]:
    """Run ``side`` in a second thread while ``main`` runs in this one; both results, or the first error.

    For a commit's two independent halves that spend their time in numpy and Arrow, which release the GIL:
    the step then takes the longer of the two instead of their sum. ``side`` must not share file handles
    with ``main``.
    """
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=name) as pool:
        pending = pool.submit(side)
        result = main()
        return result, pending.result()
