"""Delivering the outbox: over SMTP (MAIL_URL) or as .eml files under instance/outbox/.

Each message is claimed in a short transaction (row lock with SKIP LOCKED on
PostgreSQL, and a lease: `next_attempt_at` moves into the future), sent with no
transaction open, and then marked sent or rescheduled with backoff in a second short
transaction. Several senders can run at once; a sender that dies mid-send leaves a
lease that expires, so the message is sent again (at least once, never lost).
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

from sqlalchemy import select

from models import MAIL_FAILED, MAIL_QUEUED, MAIL_SENT, OutboxMessage, db, utcnow

LEASE = timedelta(minutes=5)
MAX_ATTEMPTS = 12
FIRST_RETRY = timedelta(seconds=30)
LONGEST_RETRY = timedelta(hours=2)


class PermanentFailure(Exception):
    """The mail server refused the message for good (e.g. no such recipient)."""


class Transport(Protocol):
    def send(self, message: EmailMessage) -> None: ...

    def describe(self) -> str: ...


@dataclass(frozen=True)
class SMTPTransport:
    host: str
    port: int
    use_ssl: bool = False
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    timeout: float = 10.0

    def send(self, message: EmailMessage) -> None:
        smtp: smtplib.SMTP
        if self.use_ssl:
            smtp = smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout, context=ssl.create_default_context()
            )
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self.username:
                smtp.login(self.username, self.password or "")
            smtp.send_message(message)
        except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused) as exc:
            raise PermanentFailure(str(exc)) from exc
        except smtplib.SMTPDataError as exc:
            if 500 <= exc.smtp_code < 600:
                raise PermanentFailure(str(exc)) from exc
            raise
        finally:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()

    def describe(self) -> str:
        scheme = "smtps" if self.use_ssl else "smtp"
        return f"{scheme}://{self.host}:{self.port}"


@dataclass(frozen=True)
class FileTransport:
    """Development without a mail server: one .eml file per message."""

    directory: Path

    def send(self, message: EmailMessage) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = str(message["Message-ID"]).strip("<>").replace("@", "_at_").replace("/", "_")
        path = self.directory / f"{name}.eml"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(bytes(message))
        tmp.replace(path)

    def describe(self) -> str:
        return str(self.directory)


def transport_from_url(url: str | None, outbox_dir: Path, timeout: float = 10.0) -> Transport:
    if not url:
        return FileTransport(outbox_dir)
    parts = urlsplit(url)
    if parts.scheme not in {"smtp", "smtps"} or not parts.hostname:
        raise ValueError("MAIL_URL must look like smtp://[user:pass@]host:port or smtps://…")
    use_ssl = parts.scheme == "smtps"
    return SMTPTransport(
        host=parts.hostname,
        port=parts.port or (465 if use_ssl else 25),
        use_ssl=use_ssl,
        starttls="starttls" in parts.query,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        timeout=timeout,
    )


def build_message(row: OutboxMessage, mail_from: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = mail_from
    message["To"] = row.to_address
    message["Subject"] = row.subject
    message["Date"] = format_datetime(row.created_at)
    message["Message-ID"] = row.message_id
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(row.text_body)
    message.add_alternative(row.html_body, subtype="html")
    return message


def retry_delay(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min, … doubling up to two hours."""
    delay = FIRST_RETRY * (2 ** max(attempts - 1, 0))
    return min(delay, LONGEST_RETRY)


def claim_next(mail_from: str, now: datetime) -> tuple[int, EmailMessage] | None:
    """Lease one due message to this process, in its own short transaction."""
    with db.session.begin():
        row = db.session.scalar(
            select(OutboxMessage)
            .where(OutboxMessage.status == MAIL_QUEUED, OutboxMessage.next_attempt_at <= now)
            .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        if row is None:
            return None
        row.attempts += 1
        row.next_attempt_at = now + LEASE
        return row.id, build_message(row, mail_from)


def record_outcome(message_id: int, error: Exception | None, now: datetime) -> None:
    with db.session.begin():
        row = db.session.get(OutboxMessage, message_id, with_for_update=True)
        if row is None or row.status != MAIL_QUEUED:
            return
        if error is None:
            row.status = MAIL_SENT
            row.sent_at = now
            row.last_error = None
            return
        row.last_error = f"{type(error).__name__}: {error}"[:500]
        if isinstance(error, PermanentFailure) or row.attempts >= MAX_ATTEMPTS:
            row.status = MAIL_FAILED
        else:
            row.next_attempt_at = now + retry_delay(row.attempts)


def deliver_due(
    transport: Transport,
    mail_from: str,
    *,
    limit: int = 100,
    clock: Callable[[], datetime] = utcnow,
) -> tuple[int, int]:
    """Send up to `limit` due messages; (sent, failed) counts. No transaction is open
    while the mail server is talked to."""
    db.session.rollback()  # start from a clean session: each step is its own transaction
    sent = failed = 0
    for _ in range(limit):
        claimed = claim_next(mail_from, clock())
        if claimed is None:
            break
        row_id, message = claimed
        error: Exception | None = None
        try:
            transport.send(message)
        except (PermanentFailure, smtplib.SMTPException, OSError) as exc:
            error = exc
        record_outcome(row_id, error, clock())
        if error is None:
            sent += 1
        else:
            failed += 1
    return sent, failed
