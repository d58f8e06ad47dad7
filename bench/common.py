"""Shared benchmark plumbing: isolated environments, child processes with peak RSS, machine description."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PYTHON = str(REPO / ".venv" / "bin" / "python") if (REPO / ".venv" / "bin" / "python").exists() else sys.executable
RESULT_PREFIX = "BENCH_RESULT="
# Bytecode is cached outside the checkout: this machine sets PYTHONDONTWRITEBYTECODE=1, and timing imports
# that are recompiled from source on every start would measure the compiler, not the code.
PYCACHE = Path(tempfile.gettempdir()) / "mlops-bench-pycache"
PACKAGES = ("apache-airflow", "apache-airflow-task-sdk", "pandas", "numpy", "pyarrow", "scipy", "evidently",
            "feast", "redis", "mlflow", "scikit-learn", "great-expectations", "psutil")


def bench_env(home: Path, **extra: str) -> dict[str, str]:
    """Environment of a benchmark child: a throwaway MLOPS_HOME and Airflow home, never the repo's .mlops."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "MLFLOW_TRACKING_URI",
                                                              "MLOPS_LAKE_URI", "MLOPS_REPORTS_URI",
                                                              "MLOPS_PROJECTS_DIR")}
    env.update({
        "MLOPS_REPO_ROOT": str(REPO),
        "MLOPS_HOME": str(home),
        "AIRFLOW_HOME": str(home / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow' / 'airflow.db'}",
        "FEAST_USAGE": "False",
        "GX_ANALYTICS_ENABLED": "False",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "PYTHONPYCACHEPREFIX": str(PYCACHE),
        "PYTHONPATH": f"{REPO / 'plugins'}{os.pathsep}{REPO}" + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else ""),
        "PATH": str(REPO / ".venv" / "bin") + os.pathsep + os.environ.get("PATH", ""),
    })
    env.update(extra)
    return env


class _TreeSampler(threading.Thread):
    """Polls the RSS of a process and its descendants: the peak of the largest single process and of the sum."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_single = self.peak_tree = 0
        self.peak_by_name: dict[str, int] = {}
        self._halt = threading.Event()

    def run(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self._halt.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            total = 0
            for p in procs:
                try:
                    rss = p.memory_info().rss
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                total += rss
                self.peak_single = max(self.peak_single, rss)
            self.peak_tree = max(self.peak_tree, total)
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=2)


def run_cmd(cmd: list[str], env: dict[str, str], timeout: float = 3600, cwd: Path = REPO,
            log_path: Path | None = None) -> dict[str, Any]:
    """Run a command; return wall seconds, exit code, peak RSS (kernel maxrss of the child, sampled tree) and output."""
    import resource

    out = open(log_path, "w") if log_path else subprocess.PIPE  # noqa: SIM115
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, text=True)
    sampler = _TreeSampler(proc.pid)
    sampler.start()
    stdout = ""
    try:
        if log_path is None:
            stdout, _ = proc.communicate(timeout=timeout)
        else:
            proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
    finally:
        sampler.stop()
        if log_path:
            out.close()
            stdout = log_path.read_text(errors="replace")
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # CPU of the child and every descendant it reaped: steadier than wall time on a shared machine.
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "seconds": seconds,
        "cpu_seconds": round(cpu, 3),
        "returncode": proc.returncode,
        "peak_rss_mib": round(sampler.peak_single / 2**20, 1),
        "peak_tree_rss_mib": round(sampler.peak_tree / 2**20, 1),
        "stdout": stdout,
    }


def run_step(target: str, kwargs: dict[str, Any], env: dict[str, str], timeout: float = 3600) -> dict[str, Any]:
    """Run ``module:function(**kwargs)`` in a fresh interpreter; its result plus seconds and peak RSS.

    The child reports its own ``ru_maxrss`` (the kernel's high-water mark of that process), so the figure
    is the peak of the step alone, imports included, and not disturbed by the parent's memory.
    """
    cmd = [PYTHON, "-m", "bench.child", target, json.dumps(kwargs)]
    res = run_cmd(cmd, env, timeout=timeout)
    lines = [ln for ln in res["stdout"].splitlines() if ln.startswith(RESULT_PREFIX)]
    if res["returncode"] != 0 or not lines:
        tail = "\n".join(res["stdout"].splitlines()[-40:])
        raise RuntimeError(f"benchmark step {target} failed (exit {res['returncode']}):\n{tail}")
    result = json.loads(lines[-1][len(RESULT_PREFIX):])
    result.setdefault("process_seconds", round(res["seconds"], 3))
    result.setdefault("process_cpu_seconds", res["cpu_seconds"])
    return result


@contextlib.contextmanager
def bench_stack(name: str, *, db_prefix: str, redis_users: tuple[str, str], workers: int | None = None,
                worker_concurrency: int | None = None, project_overrides: dict[str, dict] | None = None,
                up_timeout: float = 420):
    """A fresh ``scripts/stack.py`` stack of a benchmark's own; yields ``(stack, api)``; always stopped.

    Databases ``<db_prefix>_*``, the Redis db indexes of ``redis_users`` (broker, feast: users in
    ``devkit/services.py``), free loopback ports, state under a temporary directory; ``workers`` Celery
    workers of ``worker_concurrency`` task slots each (the stack's defaults when None); the bundled
    projects with production sources (``devkit.stack.write_projects``, ``project_overrides`` applied).
    However the block ends (an error, Ctrl-C, SIGTERM), ``stack.py down`` stops every process the stack
    started (by the PIDs it recorded); the temporary directory is removed once they are all gone. A stack that would not start
    raises with the end of its output.
    """
    import shutil

    from devkit import services
    from devkit.airflow_api import AirflowApi
    from devkit.stack import STACK, Stack, read_env, services_missing, stack_env, write_projects

    if missing := services_missing():
        raise RuntimeError(missing)
    base = Path(tempfile.mkdtemp(prefix=f"mlops-bench-{name}-"))
    env = stack_env(base / "home", base / "projects", db_prefix=db_prefix,
                    broker_db=str(services.redis_db(redis_users[0])), feast_db=str(services.redis_db(redis_users[1])))
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # bytecode as deployed (see PYCACHE)
    if workers is not None:
        env["MLOPS_STACK_WORKERS"] = str(workers)
    if worker_concurrency is not None:
        env["MLOPS_STACK_WORKER_CONCURRENCY"] = str(worker_concurrency)
    write_projects(base / "projects", project_overrides)
    # A benchmark stopped with SIGTERM (kill PID, a CI timeout) unwinds like an error: the stack goes down.
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        up = subprocess.run([*STACK, "up", "--fresh", "--timeout", str(up_timeout)], env=env, capture_output=True,
                            text=True, timeout=up_timeout + 180, cwd=REPO)
        if up.returncode != 0:
            raise RuntimeError(f"stack up failed:\n{up.stdout[-3000:]}\n{up.stderr[-3000:]}")
        stack = Stack(env=read_env(base / "home" / "stack" / "stack.env"), home=base / "home",
                      projects=base / "projects")
        api = AirflowApi(stack.api_url, stack.env["MLOPS_STACK_ADMIN_USER"], stack.env["MLOPS_STACK_ADMIN_PASSWORD"])
        yield stack, api
    finally:
        try:
            down = subprocess.run([*STACK, "down"], env=env, capture_output=True, text=True, timeout=180, cwd=REPO)
            stopped, said = down.returncode == 0, down.stdout[-2000:] + down.stderr[-1000:]
        except subprocess.TimeoutExpired as exc:
            stopped, said = False, f"{exc}"
        keep = os.environ.get("MLOPS_BENCH_KEEP_LOGS")
        if keep:
            keep_stack_logs(base / "home" / "stack", Path(keep) / name)
        if stopped:
            shutil.rmtree(base, ignore_errors=True)
        else:  # never hide the benchmark's own error: say it, and where the PIDs are
            print(f"[bench] stack down did not stop everything (state and pids/ kept in {base}):\n{said}",
                  file=sys.stderr, flush=True)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


#: What ``MLOPS_BENCH_KEEP_LOGS`` copies out of a benchmark stack's directory, relative to it: the components'
#: logs and the task logs (the workers share the stack's AIRFLOW_HOME), nothing else. An allow-list: no S3
#: data, no secrets file, no config with passwords, whatever a later version of the stack adds beside them.
KEPT_LOGS = ("logs", "airflow/logs")


def keep_stack_logs(stack_dir: Path, dest: Path) -> list[str]:
    """Copy the :data:`KEPT_LOGS` directories of ``stack_dir`` under ``dest``; return what was copied (relative)."""
    import shutil

    kept = []
    for pattern in KEPT_LOGS:
        for found in sorted(stack_dir.glob(pattern)):
            if found.is_dir() and not found.is_symlink():
                shutil.copytree(found, dest / found.relative_to(stack_dir), dirs_exist_ok=True, symlinks=True)
                kept.append(found.relative_to(stack_dir).as_posix())
    return kept


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(round(q / 100 * len(ordered) + 0.5))))
    return ordered[rank - 1]


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    import psutil

    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        model = platform.processor()
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                                capture_output=True, text=True).stdout.strip())
    return {
        "cpu_model": model,
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "packages": versions,
        "git_commit": commit + ("+dirty" if dirty else ""),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"
