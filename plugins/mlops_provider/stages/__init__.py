"""One entry per pipeline stage (``run_*``), composed from ``domain`` and ``io``; no Airflow here."""

from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

_Main = TypeVar("_Main")
_Side = TypeVar("_Side")
_Item = TypeVar("_Item")


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


def read_ahead(loads: Iterable[Callable[[], _Item]], *, name: str) -> Iterator[_Item]:
    """Each load's result in order, the next one loading in a second thread while the caller uses this one.

    For a serial task that decodes one file while it encodes another (a commit rewriting its shards' row
    groups into the day's partition): Parquet decoding and encoding release the GIL, so the two overlap on
    the worker's other core. At most two results are held at once. The loads run one at a time, in order,
    in the one thread, so they may share file handles with each other (not with the caller).
    """
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=name) as pool:
        pending = None
        for load in loads:
            upcoming = pool.submit(load)
            if pending is not None:
                yield pending.result()
            pending = upcoming
        if pending is not None:
            yield pending.result()


def shard_row_groups(files: list[Any], schema: Any, *, name: str) -> Iterator[Any]:
    """Every row group of the shards' Parquet ``files``, in order, cast to ``schema``, each read :func:`read_ahead`.

    What a commit writes into the day's partition: whole row groups as the shards wrote them (the unsharded
    path's layout), not pyarrow's 64K-row batches, each of which would become a row group of its own and
    cost twice the CPU to write.
    """
    def load(source: Any, index: int) -> Any:
        return source.read_row_group(index).cast(schema)

    return read_ahead(((lambda s=source, i=index: load(s, i)) for source in files
                       for index in range(source.num_row_groups)), name=name)
