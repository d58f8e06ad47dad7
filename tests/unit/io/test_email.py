"""Alert delivery (io/email.py): outbox, SMTP to a real server on loopback (aiosmtpd), send-once markers;
and the Airflow layer's mapping of an SMTP connection to plain settings (hooks/smtp.py)."""

from __future__ import annotations

import json
import os
import time
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import pytest
from mlops_provider.domain import alerts
from mlops_provider.exceptions import MlopsError
from mlops_provider.io.email import (
    FileSentMarkers,
    OutboxTransport,
    SmtpSettings,
    SmtpTransport,
    deliver,
    key_digest,
)

from tests.smtp import Collector, free_port, start_smtp_server

PASSWORD = "s3cr3t-Pa55word-xyz"


def message(subject: str = "[MLOps] test alert") -> EmailMessage:
    return alerts.build_message(subject=subject, recipients=["oncall@example.com"], html_body="<p>hi</p>",
                                text_body="hi\n", headers={"X-MLOps-Kind": "drift"})


@pytest.fixture
def smtp_server():
    from aiosmtpd.smtp import AuthResult

    collector = Collector()

    def authenticator(server, session, envelope, mechanism, auth_data):
        collector.logins.append((auth_data.login.decode(), auth_data.password.decode()))
        return AuthResult(success=auth_data.password.decode() == PASSWORD)

    controller, port = start_smtp_server(collector, authenticator)
    collector.port = port
    yield collector
    controller.stop()


def settings(port: int, **kw) -> SmtpSettings:
    base = dict(host="127.0.0.1", port=port, login="alerts", password=PASSWORD, use_ssl=False, starttls=False,
                timeout=10, retry_limit=0, name="smtp_test")
    return SmtpSettings(**{**base, **kw})


def test_outbox_writes_one_eml_and_a_sent_marker(tmp_path):
    outbox, sent = tmp_path / "outbox", tmp_path / "sent"
    result = deliver(message(), transport=OutboxTransport(outbox), dedup_key="k1", markers=FileSentMarkers(sent))

    assert result["sent"] is True and result["via"] == "outbox"
    [eml] = outbox.glob("*.eml")
    assert str(eml) == result["path"] and eml.name.endswith(f"-{key_digest('k1')[:12]}.eml")
    parsed = BytesParser(policy=policy.default).parsebytes(eml.read_bytes())
    assert parsed["Subject"] == "[MLOps] test alert" and parsed["X-MLOps-Dedup-Key"] == "k1"
    assert parsed["From"] == alerts.DEFAULT_FROM
    marker = sent / f"{key_digest('k1')}.json"
    assert result["marker"] == str(marker)
    record = json.loads(marker.read_text())
    assert record["key"] == "k1" and record["via"] == "outbox" and record["path"] == str(eml)
    assert not list(sent.glob("*.sending")) and not list(outbox.glob(".*.tmp"))


def test_outbox_and_markers_default_to_mlops_home(mlops_home):
    result = deliver(message(), transport=OutboxTransport(), dedup_key="k-default")

    assert result["path"].startswith(str(mlops_home / "outbox") + "/")
    assert result["marker"] == str(mlops_home / "alerts" / "sent" / f"{key_digest('k-default')}.json")


def test_smtp_delivery_to_a_real_server(smtp_server, tmp_path):
    msg = message()
    msg["Bcc"] = "audit@example.com"
    transport = SmtpTransport(settings(smtp_server.port, from_email="mlops@example.com"))
    result = deliver(msg, transport=transport, dedup_key="smtp-1", markers=FileSentMarkers(tmp_path))

    assert result == {"sent": True, "via": "smtp", "to": ["oncall@example.com", "audit@example.com"],
                      "conn_id": "smtp_test", "marker": str(tmp_path / f"{key_digest('smtp-1')}.json")}
    assert smtp_server.logins == [("alerts", PASSWORD)]
    [envelope] = smtp_server.envelopes
    assert envelope.mail_from == "mlops@example.com"
    assert envelope.rcpt_tos == ["oncall@example.com", "audit@example.com"]
    received = smtp_server.messages()[0]
    assert received["From"] == "mlops@example.com" and received["Bcc"] is None  # Bcc is envelope-only
    assert received["X-MLOps-Dedup-Key"] == "smtp-1"
    assert received.get_body(("plain",)).get_content().strip() == "hi"
    assert PASSWORD.encode() not in envelope.original_content


def test_smtp_without_login_keeps_the_message_sender(smtp_server, tmp_path):
    transport = SmtpTransport(settings(smtp_server.port, login=None, password=None))
    deliver(message(), transport=transport, dedup_key="anon", markers=FileSentMarkers(tmp_path))

    assert smtp_server.logins == []
    assert smtp_server.envelopes[0].mail_from == "mlops-alerts@localhost"
    assert smtp_server.messages()[0]["From"] == alerts.DEFAULT_FROM


def test_second_send_with_the_same_key_sends_nothing(smtp_server, tmp_path):
    markers = FileSentMarkers(tmp_path / "sent")
    transport = SmtpTransport(settings(smtp_server.port))
    first = deliver(message(), transport=transport, dedup_key="same", markers=markers)
    second = deliver(message(), transport=transport, dedup_key="same", markers=markers)
    outboxed = deliver(message(), transport=OutboxTransport(tmp_path / "outbox"), dedup_key="same", markers=markers)

    assert first["sent"] is True
    assert second == outboxed == {"sent": False, "duplicate": True, "marker": first["marker"]}
    assert len(smtp_server.envelopes) == 1
    assert not (tmp_path / "outbox").exists()


def test_a_live_claim_blocks_a_concurrent_sender_and_a_stale_one_is_taken_over(tmp_path):
    sent, outbox = tmp_path / "sent", tmp_path / "outbox"
    claim = sent / f"{key_digest('busy')}.sending"
    claim.parent.mkdir(parents=True)
    claim.touch()

    busy = deliver(message(), transport=OutboxTransport(outbox), dedup_key="busy", markers=FileSentMarkers(sent))
    assert busy["sent"] is False and busy["in_flight"] is True and not outbox.exists()
    assert claim.exists()  # the other sender's claim is left alone

    old = time.time() - 3600
    os.utime(claim, (old, old))  # that sender died
    taken = deliver(message(), transport=OutboxTransport(outbox), dedup_key="busy", markers=FileSentMarkers(sent))
    assert taken["sent"] is True and len(list(outbox.glob("*.eml"))) == 1 and not claim.exists()


def test_failed_smtp_delivery_raises_and_leaves_no_marker(tmp_path):
    sent = tmp_path / "sent"
    transport = SmtpTransport(settings(free_port(), name="smtp_down", timeout=2))
    with pytest.raises(MlopsError, match="smtp_down.*a retry sends it") as raised:
        deliver(message(), transport=transport, dedup_key="down", markers=FileSentMarkers(sent))
    assert PASSWORD not in str(raised.value)
    assert list(sent.iterdir()) == []  # neither marker nor claim


def test_another_marker_store_only_implements_the_protocol(tmp_path):
    class MemoryMarkers:
        def __init__(self):
            self.records, self.claims = {}, set()

        def location(self, key):
            return f"memory:{key}"

        def is_sent(self, key):
            return key in self.records

        def claim(self, key):
            if key in self.claims:
                return False
            self.claims.add(key)
            return True

        def release(self, key):
            self.claims.discard(key)

        def record(self, key, record):
            self.records[key] = record

    markers = MemoryMarkers()
    transport = OutboxTransport(tmp_path / "outbox")
    first = deliver(message(), transport=transport, dedup_key="m", markers=markers)
    second = deliver(message(), transport=transport, dedup_key="m", markers=markers)

    assert first["marker"] == "memory:m" and markers.records["m"]["subject"] == "[MLOps] test alert"
    assert second == {"sent": False, "duplicate": True, "marker": "memory:m"}
    assert markers.claims == set() and len(list((tmp_path / "outbox").glob("*.eml"))) == 1


def test_masker_plugged_into_the_domain():
    assert alerts.redact("see postgresql://etl:pw@db/x") == "see postgresql://***@db/x"
    try:
        alerts.set_masker(lambda text: text.replace("topsecret", "***"))
        assert alerts.esc("<topsecret>") == "&lt;***&gt;"
    finally:
        alerts.set_masker(None)
    assert alerts.redact("topsecret") == "topsecret"


# -- the Airflow layer: connection -> settings ------------------------------------------------------
def test_smtp_connection_becomes_plain_settings(monkeypatch):
    from mlops_provider.hooks.smtp import smtp_settings

    monkeypatch.setenv("AIRFLOW_CONN_SMTP_MAPPED", json.dumps({
        "conn_type": "smtp", "host": "mail.example.com", "port": 2525, "login": "alerts", "password": PASSWORD,
        "extra": {"disable_ssl": True, "timeout": 7, "from_email": "mlops@example.com", "retry_limit": 1,
                  "ssl_context": "none"}}))
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_BARE", json.dumps({"conn_type": "smtp", "host": "mx"}))

    assert smtp_settings("smtp_mapped") == SmtpSettings(
        host="mail.example.com", port=2525, login="alerts", password=PASSWORD, use_ssl=False, starttls=True,
        timeout=7, from_email="mlops@example.com", retry_limit=1, verify_certificate=False, name="smtp_mapped")
    assert smtp_settings("smtp_bare") == SmtpSettings(host="mx", name="smtp_bare")  # SmtpHook's defaults
    assert smtp_settings("smtp_missing") is None
    assert PASSWORD not in repr(smtp_settings("smtp_mapped"))


def test_connection_transport_uses_smtp_when_the_connection_exists_else_the_outbox(smtp_server, monkeypatch,
                                                                                  mlops_home):
    from mlops_provider.hooks.smtp import ConnectionTransport

    monkeypatch.setenv("AIRFLOW_CONN_SMTP_HERE", json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": smtp_server.port, "login": "alerts",
        "password": PASSWORD, "extra": {"disable_ssl": True, "disable_tls": True, "retry_limit": 0}}))
    via_smtp = deliver(message(), transport=ConnectionTransport("smtp_here"), dedup_key="a")
    via_outbox = deliver(message(), transport=ConnectionTransport("smtp_absent"), dedup_key="b")

    assert via_smtp["via"] == "smtp" and via_smtp["conn_id"] == "smtp_here" and len(smtp_server.envelopes) == 1
    assert via_outbox["via"] == "outbox" and via_outbox["path"].startswith(str(mlops_home / "outbox"))
