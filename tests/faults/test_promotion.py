"""Promotion under faults: a worker killed, or MLflow refusing, between the alias writes of a promotion."""

from __future__ import annotations

import pytest

from tests.faults.conftest import MODEL
from tests.faults.support import Case

pytestmark = pytest.mark.faults


def check_aliases(case: Case, world) -> None:
    """Exactly one champion (the promoted version), the replaced one previous, no challenger on it, nothing pending."""
    from mlops_provider.io import model_store

    client = model_store.client_for()
    now = model_store.aliases(client, MODEL)
    case.check("exactly one champion, the promoted version", now["champion"] == world.challenger, now)
    case.check("previous_champion is the replaced champion", now["previous_champion"] == world.champion, now)
    case.check("challenger no longer points at the champion", now["challenger"] != now["champion"], now)
    tags = model_store.model_version(client, MODEL, world.challenger).tags or {}
    case.check("no promotion left half-done (pending tag)", "pending_previous_champion" not in tags, tags)
    case.check("the champion is vetted (decision tag)", tags.get("promotion_decision") == "promoted", tags)


@pytest.mark.parametrize(("fault", "failpoint"), [
    ("SIGKILL between alias writes", "mlflow.alias=kill"),
    ("MLflow refuses between alias writes", "mlflow.alias=raise:ConnectionError"),
])
def test_promotion_interrupted_between_alias_writes(world, home, fault, failpoint):
    """The champion alias moved, previous_champion and challenger not yet; the retry finishes the promotion."""
    case = Case(fault, "train.promote")
    args = {"version": world.challenger, "expected_champion": world.champion}
    broken = home.run("promote", args, failpoints=failpoint)
    assert broken.returncode != 0, broken.output
    retry = home.run("promote", args)
    assert retry.returncode == 0, retry.output
    check_aliases(case, world)
    case.verify()


def test_registration_racing_a_promotion_between_its_alias_writes(world, home):
    """A training run registers v3 (another worker) while a promotion of v2 pauses between its alias writes.

    The promotion read ``challenger = v2`` and drops it after moving champion; the registration's
    ``challenger`` write waits for the promotion's lock, so it is not lost to that drop.
    """
    import time

    from mlops_provider.io import model_store

    case = Case("registration racing a promotion", "train.register")
    promotion = home.start("promote", {"version": world.challenger, "expected_champion": world.champion},
                           failpoints="mlflow.alias=pause")
    home.wait_reached("mlflow.alias", promotion)  # champion moved; previous_champion and challenger not yet
    registration = home.start("register", {})
    client, deadline = model_store.client_for(), time.monotonic() + 60
    while len(client.search_model_versions(f"name = '{MODEL}'")) < 3:  # registered; its alias write comes next
        assert registration.poll() is None and time.monotonic() < deadline, home.finish(registration).output
        time.sleep(0.1)
    time.sleep(1.5)
    case.check("the registration waits for the promotion's lock", registration.poll() is None,
               registration.poll() is None or home.finish(registration).output)
    home.resume("mlflow.alias")
    promoted, registered = home.finish(promotion), home.finish(registration)
    assert promoted.returncode == 0, promoted.output
    assert registered.returncode == 0, registered.output
    new = registered.result["version"]
    now = model_store.aliases(client, MODEL)
    case.check("the promoted version is the one champion", now["champion"] == world.challenger, now)
    case.check("previous_champion is the replaced champion", now["previous_champion"] == world.champion, now)
    case.check("the new registration is challenger", now["challenger"] == new and registered.result["challenger"], now)
    case.verify()
