"""A real SMTP server on loopback (aiosmtpd) that keeps every message it receives, for tests."""

from __future__ import annotations

import socket
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser


class Collector:
    """aiosmtpd handler that keeps every delivered envelope."""

    def __init__(self):
        self.envelopes = []
        self.logins = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd hook name)
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def messages(self) -> list[EmailMessage]:
        return [BytesParser(policy=policy.default).parsebytes(e.original_content) for e in self.envelopes]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_smtp_server(collector: Collector, authenticator=None):
    """Start an SMTP server on 127.0.0.1 delivering into ``collector``; returns (controller, port)."""
    from aiosmtpd.controller import Controller

    port = free_port()
    controller = Controller(collector, hostname="127.0.0.1", port=port, authenticator=authenticator,
                            auth_require_tls=False)
    controller.start()
    return controller, port
