"""Alert email and retrain request under faults: SMTP down, SMTP cut mid email, a worker killed mid email
or mid retrain request. Alerts go to a real SMTP server on loopback (aiosmtpd, ``tests/smtp.py``)."""

from __future__ import annotations

import json

import pytest

from tests.faults.support import Case
from tests.smtp import Collector, free_port, start_smtp_server

pytestmark = pytest.mark.faults


@pytest.fixture
def smtp():
    collector = Collector()
    controller, port = start_smtp_server(collector)
    yield collector, controller, port
    if controller._thread is not None:  # a test may have stopped it already (the cut)
        controller.stop()


def delivered(collector: Collector, key: str) -> int:
    return sum(1 for m in collector.messages() if m["X-MLOps-Dedup-Key"] == key)


def dedup_key(world) -> str:
    """The alert's dedup key, as the stage computes it (the only alert of the world: its last day's drift)."""
    import inspect

    from mlops_provider.config.project import load_project
    from mlops_provider.domain.alerts import dedup_key as key

    summary = json.loads(world.summary.read_text())
    fields = {"model_version": summary["model_version"], "day": summary["day"], "kind": summary["kind"]}
    return key(load_project("fraud"), **{k: v for k, v in fields.items() if k in inspect.signature(key).parameters})


def check_once(case: Case, collector: Collector, key: str) -> None:
    n = delivered(collector, key)
    case.check("alert delivered at least once", n >= 1, f"{n} delivered")
    case.check("alert delivered at most once per dedup key", n <= 1, f"{n} delivered")


def requests(home) -> list[str]:
    return sorted(p.name for p in (home.path / "reports" / "fraud" / "retrain_requests").glob("*.json"))


def test_smtp_down_then_back(world, home, smtp):
    """The SMTP server refuses (a closed port); the retry finds it back and delivers once."""
    collector, _, port = smtp
    case = Case("SMTP refused", "monitor.alert")
    args = {"summary": str(world.summary)}
    failed = home.run("alert", {**args, "smtp_port": free_port()})
    case.check("a refused send fails the try", failed.returncode not in (0, -9), failed.output)
    retry = home.run("alert", {**args, "smtp_port": port})
    assert retry.returncode == 0, retry.output
    check_once(case, collector, dedup_key(world))
    again = home.run("alert", {**args, "smtp_port": port})
    case.check("a rerun after delivery sends nothing", again.result and again.result.get("duplicate"), again.output)
    check_once(case, collector, dedup_key(world))
    case.verify()


def test_smtp_cut_mid_email(world, home, smtp):
    """The SMTP server goes away while the alert is claimed and about to be sent; the retry delivers once."""
    collector, controller, port = smtp
    case = Case("SMTP cut mid email", "monitor.alert")
    args = {"summary": str(world.summary), "smtp_port": port}
    proc = home.start("alert", args, failpoints="email.send=pause")
    home.wait_reached("email.send", proc)
    controller.stop()
    home.resume("email.send")
    failed = home.finish(proc)
    case.check("the cut fails the try", failed.returncode not in (0, -9), failed.output)
    back, port = start_smtp_server(collector)
    try:
        retry = home.run("alert", {**args, "smtp_port": port})
        assert retry.returncode == 0, retry.output
    finally:
        back.stop()
    check_once(case, collector, dedup_key(world))
    case.verify()


def test_kill_mid_email(world, home, smtp):
    """SIGKILL after the alert was claimed, before it was sent: Airflow's retry (a minute later) must send it."""
    collector, _, port = smtp
    case = Case("SIGKILL mid email", "monitor.alert")
    args = {"summary": str(world.summary), "smtp_port": port}
    killed = home.run("alert", args, failpoints="email.send=kill")
    assert killed.killed, killed.output
    retry = home.run("alert", args)
    assert retry.returncode == 0, retry.output
    check_once(case, collector, dedup_key(world))
    case.verify()


def test_kill_after_email_sent_before_marker(world, home, smtp):
    """SIGKILL after the SMTP server accepted the alert, before the sent marker is written.

    SMTP has no idempotency: the retry cannot know the dead try delivered, so it sends again (alerts are
    at least once, documented in io/email.deliver and docs/security.md). What makes the copy harmless is
    what mail systems offer for it: both copies carry one ``Message-ID`` derived from the dedup key, so
    every mail client and thread shows them as one message. A later rerun finds the marker and sends nothing.
    """
    collector, _, port = smtp
    case = Case("SIGKILL after email sent", "monitor.alert")
    args = {"summary": str(world.summary), "smtp_port": port}
    killed = home.run("alert", args, failpoints="email.record=kill")
    assert killed.killed, killed.output
    retry = home.run("alert", args)
    assert retry.returncode == 0, retry.output
    key = dedup_key(world)
    copies = [m for m in collector.messages() if m["X-MLOps-Dedup-Key"] == key]
    case.check("alert delivered at least once", len(copies) >= 1, f"{len(copies)} delivered")
    case.check("one copy per try that reached SMTP (2)", len(copies) == 2, f"{len(copies)} delivered")
    ids = {str(m["Message-ID"]) for m in copies}
    case.check("every copy carries the same Message-ID", len(ids) == 1, ids)
    again = home.run("alert", args)
    case.check("a rerun after the retry sends nothing", again.result and again.result.get("duplicate"), again.output)
    case.check("still the same copies after the rerun", delivered(collector, key) == len(copies),
               f"{delivered(collector, key)} delivered")
    case.verify()


@pytest.mark.parametrize("point", ["retrain.record", "task.return"])
def test_kill_mid_retrain_request(world, home, smtp, point):
    """SIGKILL in the monitoring task after the alert, before (retrain.record) or after (task.return) the
    retrain request is recorded; the retry announces the request once and emails once."""
    collector, _, port = smtp
    case = Case("SIGKILL mid retrain request", f"monitor.request_retrain@{point}")
    args = {"summary": str(world.summary), "smtp_port": port}
    killed = home.run("monitor_tail", args, failpoints=f"{point}=kill")
    assert killed.killed, killed.output
    retry = home.run("monitor_tail", args)
    assert retry.returncode == 0, retry.output
    announced = int(bool(retry.result["retrain_requested"]))  # the killed try pushed nothing to XCom
    case.check("retrain request announced exactly once", announced == 1, retry.result["retrain"])
    case.check("retrain request recorded once", requests(home) == [f"{retry.result['day']}.json"], requests(home))
    check_once(case, collector, dedup_key(world))
    # request_retrain announces it (marks the request); a later rerun of the monitor requests nothing new.
    assert home.run("announce_retrain", {"day": retry.result["day"]}).returncode == 0
    rerun = home.run("monitor_tail", args)
    assert rerun.returncode == 0, rerun.output
    case.check("a rerun after the announcement requests nothing new", not rerun.result["retrain_requested"],
               rerun.result["retrain"])
    check_once(case, collector, dedup_key(world))
    case.verify()
