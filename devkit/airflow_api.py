"""A small client of the Airflow 3 REST API that does what the web UI does: token, unpause, trigger, poll."""

from __future__ import annotations

import time
from typing import Any

import requests

FINISHED = {"success", "failed"}


class AirflowApi:
    """Authenticated session against ``base_url`` (simple auth manager: ``POST /auth/token``)."""

    def __init__(self, base_url: str, username: str, password: str):
        self.base_url = base_url.rstrip("/")
        self.username = username
        self.password = password
        self.session = requests.Session()
        self.login()

    def login(self) -> None:
        response = requests.post(f"{self.base_url}/auth/token", json={"username": self.username,
                                                                      "password": self.password}, timeout=30)
        response.raise_for_status()
        self.session.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", 30)
        response = self.session.request(method, f"{self.base_url}/api/v2{path}", **kwargs)
        if response.status_code == 401:  # token expired during a long wait
            self.login()
            response = self.session.request(method, f"{self.base_url}/api/v2{path}", **kwargs)
        if response.status_code >= 400:
            raise AssertionError(f"{method} {path}: HTTP {response.status_code}: {response.text[:2000]}")
        return response.json() if response.content else None

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params or None)

    # -- what the UI does ----------------------------------------------------------------------------
    def wait_dag(self, dag_id: str, timeout: float = 180) -> dict[str, Any]:
        """The DAG once the dag-processor has serialized it (a fresh stack parses files for a while)."""
        deadline = time.monotonic() + timeout
        while True:
            response = self.session.get(f"{self.base_url}/api/v2/dags/{dag_id}", timeout=30)
            if response.status_code == 200:
                return response.json()
            if time.monotonic() > deadline:
                raise AssertionError(f"DAG {dag_id} not found after {timeout:.0f}s: {response.text[:500]}")
            time.sleep(2)

    def unpause(self, dag_id: str) -> None:
        self.wait_dag(dag_id)
        self.request("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def pause(self, dag_id: str) -> None:
        self.request("PATCH", f"/dags/{dag_id}", json={"is_paused": True})

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        run = self.request("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf or {}})
        return run["dag_run_id"]

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.get(f"/dags/{dag_id}/dagRuns/{run_id}")

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        return self.get(f"/dags/{dag_id}/dagRuns", limit=100, order_by="id")["dag_runs"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", limit=100)["task_instances"]

    def tries(self, dag_id: str, run_id: str, task_id: str) -> list[dict[str, Any]]:
        return self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/tries")["task_instances"]

    def wait_run(self, dag_id: str, run_id: str, timeout: float, describe=None) -> dict[str, Any]:
        """Poll until the run finished; on timeout or failure the message lists every task's state."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.run(dag_id, run_id)
            if run["state"] in FINISHED or time.monotonic() > deadline:
                break
            time.sleep(3)
        if run["state"] != "success":
            tis = ", ".join(f"{t['task_id']}={t['state']} (try {t['try_number']}, {t.get('hostname')})"
                            for t in self.task_instances(dag_id, run_id))
            extra = f"\n{describe()}" if describe else ""
            raise AssertionError(f"{dag_id} run {run_id} is {run['state']} after at most {timeout:.0f}s: {tis}{extra}")
        return run

    def wait_runs_settled(self, dag_id: str, at_least: int, timeout: float) -> list[dict[str, Any]]:
        """All runs of ``dag_id`` once ``at_least`` exist and none is queued or running."""
        deadline = time.monotonic() + timeout
        while True:
            runs = self.runs(dag_id)
            if len(runs) >= at_least and all(r["state"] in FINISHED for r in runs):
                return runs
            if time.monotonic() > deadline:
                states = [(r["dag_run_id"], r["state"]) for r in runs]
                raise AssertionError(f"{dag_id}: runs not settled after {timeout:.0f}s (want >= {at_least}): {states}")
            time.sleep(3)
