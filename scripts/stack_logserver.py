"""Airflow's task-log server bound to one address (Airflow's own ``serve_logs`` binds every address).

The no-Docker stack starts Celery workers with ``--skip-serve-logs`` and one of these per worker, on
127.0.0.1 only. Usage: ``python scripts/stack_logserver.py --host 127.0.0.1 --port 28793``.
"""

from __future__ import annotations

import argparse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()

    import uvicorn

    uvicorn.run("airflow.utils.serve_logs.log_server:get_app", factory=True, host=args.host, port=args.port,
                log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
