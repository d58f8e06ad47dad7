"""Every named volume docker-compose.yaml mounts into the project's image exists in the image, owned by the
user the containers run as.

Docker initialises an empty named volume from the image's directory at the mount point (owner and mode
included). A mount point the Dockerfile never creates starts root-owned 0755 while every container runs as
``${AIRFLOW_UID:-50000}:0``: ``airflow-init`` could not write its password file and nothing waiting on it
would start. This machine has no Docker engine, so the test replays the Dockerfile's ``install -d`` lines into
a temporary root and checks the result as the image would have it; ``scripts/compose-smoke.sh`` is the same
check for real on a machine with Docker.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

from devkit.stack import REPO

pytestmark = pytest.mark.integration


def _image_mounts() -> dict[str, set[str]]:
    """Mount point -> services, for every named volume mounted into a service built from the Dockerfile."""
    compose = yaml.safe_load((REPO / "docker-compose.yaml").read_text())
    named = set(compose.get("volumes") or {})
    mounts: dict[str, set[str]] = {}
    for name, service in compose["services"].items():
        if "build" not in service:
            continue
        for volume in service.get("volumes") or []:
            source, _, rest = str(volume).partition(":")
            if source in named:
                mounts.setdefault(rest.split(":")[0], set()).add(name)
    return mounts


def _runtime_user() -> tuple[int, int]:
    compose = yaml.safe_load((REPO / "docker-compose.yaml").read_text())
    users = {s.get("user") for s in compose["services"].values() if "build" in s}
    assert len(users) == 1, f"services built from the Dockerfile run as different users: {users}"
    uid, gid = re.sub(r"\$\{AIRFLOW_UID:-(\d+)\}", r"\1", users.pop()).split(":")
    return int(uid), int(gid)


def _dockerfile_directories() -> list[tuple[list[str], dict[str, str]]]:
    """(paths, options) of each ``RUN install -d ...`` the Dockerfile runs as root."""
    found, user = [], "root"
    for line in (REPO / "Dockerfile").read_text().splitlines():
        if line.startswith("USER "):
            user = line.split()[1]
        elif line.startswith("RUN install -d"):
            assert user == "root", f"{line!r} runs as {user}: it cannot chown"
            args = shlex.split(line[len("RUN "):])[2:]
            options = {}
            while args and args[0].startswith("-"):
                options[args[0]] = args[1]
                args = args[2:]
            found.append((args, options))
    return found


def test_every_named_volume_mount_point_exists_in_the_image_owned_by_the_runtime_user():
    mounts = _image_mounts()
    assert {"/opt/airflow/auth", "/opt/airflow/mlops"} <= set(mounts), mounts
    uid, gid = _runtime_user()
    created = {path: options for paths, options in _dockerfile_directories() for path in paths}
    for mount, services in sorted(mounts.items()):
        assert mount in created, (f"{mount} (named volume of {sorted(services)}) is not created in the Dockerfile: "
                                  f"the volume would start root-owned and unwritable for {uid}:{gid}")
        options = created[mount]
        assert int(options["-o"]) == uid and int(options["-g"]) == gid, (mount, options)
        assert int(options["-m"], 8) & 0o070 == 0o070, f"{mount} is not group-writable (an AIRFLOW_UID override)"


def test_the_dockerfile_layout_replayed_gives_the_runtime_user_a_writable_directory():
    if os.geteuid() != 0:
        pytest.skip("replaying chown needs root")
    uid, gid = _runtime_user()
    # Not pytest's tmp_path: its parents are private to root, and the runtime user must reach the mounts.
    tmp_path = Path(tempfile.mkdtemp(prefix="image-layout-"))
    tmp_path.chmod(0o755)
    try:
        _replay(tmp_path, uid, gid)
    finally:
        shutil.rmtree(tmp_path)


def _replay(tmp_path: Path, uid: int, gid: int) -> None:
    for paths, options in _dockerfile_directories():
        rebased = [str(tmp_path / p.lstrip("/")) for p in paths]
        subprocess.run(["install", "-d", *(x for kv in options.items() for x in kv), *rebased], check=True)
    for mount in _image_mounts():
        info = (tmp_path / mount.lstrip("/")).stat()
        assert (info.st_uid, info.st_gid) == (uid, gid) and stat.S_ISDIR(info.st_mode), mount
        # What airflow-init does first: write a file there as the runtime user.
        probe = tmp_path / mount.lstrip("/") / "probe"
        subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "sh", "-c",
                        f"echo ok > {shlex.quote(str(probe))}"], check=True)
        assert probe.read_text() == "ok\n"
