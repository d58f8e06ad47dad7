"""SMTP sink of the no-Docker stack: accepts every message on loopback and stores it as an ``.eml`` file.

Usage: ``python scripts/stack_smtp.py --host 127.0.0.1 --port 21025 --maildir DIR``. Each message is
written to a temporary name and renamed to ``<epoch-ns>-<n>.eml``, so a reader never sees half a file.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import signal
from pathlib import Path


class MaildirHandler:
    """aiosmtpd handler: one ``.eml`` file per received message (envelope recipients in ``X-Rcpt-To``)."""

    def __init__(self, maildir: Path):
        self.maildir = maildir
        self.counter = itertools.count(1)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        import time

        name = f"{time.time_ns()}-{next(self.counter)}"
        tmp = self.maildir / f".{name}.tmp"
        content = envelope.original_content or envelope.content
        if isinstance(content, str):
            content = content.encode("utf-8")
        header = (f"X-Mail-From: {envelope.mail_from}\r\n"
                  f"X-Rcpt-To: {', '.join(envelope.rcpt_tos)}\r\n").encode()
        tmp.write_bytes(header + content)
        os.replace(tmp, self.maildir / f"{name}.eml")
        return "250 Message accepted for delivery"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=21025)
    parser.add_argument("--maildir", type=Path, required=True)
    args = parser.parse_args()
    args.maildir.mkdir(parents=True, exist_ok=True)

    from aiosmtpd.controller import Controller

    controller = Controller(MaildirHandler(args.maildir), hostname=args.host, port=args.port)
    controller.start()
    print(f"SMTP sink on {args.host}:{args.port} -> {args.maildir}", flush=True)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        loop.run_until_complete(stop.wait())
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
