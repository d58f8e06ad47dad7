"""Entry point of one measured step in a fresh interpreter: ``python -m bench.child module:function '<json>'``.

Prints one ``BENCH_RESULT=<json>`` line: the function's result, its wall seconds and the process's peak RSS.
"""

from __future__ import annotations

import importlib
import json
import resource
import sys
import time

from bench.common import RESULT_PREFIX


def main() -> None:
    target, raw = sys.argv[1], sys.argv[2]
    module_name, func_name = target.split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    kwargs = json.loads(raw)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    result = func(**kwargs) or {}
    seconds = time.perf_counter() - t0
    result.setdefault("seconds", round(seconds, 4))
    result["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    result["rss_before_step_mib"] = round(rss_before, 1)
    sys.stdout.flush()
    print(RESULT_PREFIX + json.dumps(result, default=str), flush=True)


if __name__ == "__main__":
    main()
