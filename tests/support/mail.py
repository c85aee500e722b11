"""Delivering the outbox inside a test, to the suite's SMTP server."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from flask import current_app

from dispatch_pay.mail.delivery import SMTPTransport, deliver_due
from models import utcnow
from tests.support.smtp import SMTPServer


def deliver(smtp: SMTPServer, clock: Callable[[], datetime] = utcnow) -> tuple[int, int]:
    """Run one `send-mail` pass against `smtp`: (sent, failed)."""
    transport = SMTPTransport("127.0.0.1", smtp.port, timeout=5)
    return deliver_due(transport, current_app.config["MAIL_FROM"], clock=clock)
