"""stages.read_ahead: a commit decodes the next row group while it encodes this one."""

from __future__ import annotations

import threading

import pytest
from mlops_provider.stages import read_ahead


def test_results_come_in_order_and_the_next_load_runs_while_the_caller_works():
    order, callers = [], set()

    def load(i):
        def run():
            order.append(i)
            callers.add(threading.current_thread().name)
            return i * 10
        return run

    got = []
    for value in read_ahead((load(i) for i in range(5)), name="probe-read"):
        got.append(value)
        # While the caller holds item k, item k + 1 is loading or loaded already (never further ahead).
        assert len(order) <= len(got) + 1
    assert got == [0, 10, 20, 30, 40] and order == [0, 1, 2, 3, 4]
    assert all(name.startswith("probe-read") for name in callers)


def test_a_failed_load_raises_in_the_caller_and_nothing_after_it_loads():
    loaded = []

    def load(i):
        def run():
            loaded.append(i)
            if i == 2:
                raise OSError("row group 2 unreadable")
            return i
        return run

    got = []
    with pytest.raises(OSError, match="row group 2"):
        for value in read_ahead((load(i) for i in range(6)), name="probe-read"):
            got.append(value)
    assert got == [0, 1] and max(loaded) <= 3


def test_nothing_to_load_is_nothing_to_yield():
    assert list(read_ahead(iter(()), name="probe-read")) == []
