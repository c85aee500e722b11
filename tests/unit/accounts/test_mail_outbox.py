"""The mail outbox: queued with its cause, delivered by SMTP at least once, never lost."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from dispatch_pay.errors import DomainError
from dispatch_pay.mail.delivery import FileTransport, deliver_due, retry_delay, transport_from_url
from dispatch_pay.mail.outbox import queue_mail
from models import MAIL_QUEUED, MAIL_SENT, OutboxMessage, db, utcnow
from tests.support.mail import deliver
from tests.support.smtp import SMTPServer, html_part, text_part

pytestmark = pytest.mark.usefixtures("db_connection")


def queue(to: str = "ann@example.com", link: str = "http://dispatch.test/x") -> OutboxMessage:
    with db.session.begin_nested():
        message = queue_mail("sign_in", to, "Your sign-in link", link=link)
    db.session.commit()
    return message


def outbox() -> list[OutboxMessage]:
    return list(db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def test_message_is_delivered_over_smtp_with_text_and_html(app: Flask, smtp: SMTPServer) -> None:
    with app.test_request_context():
        queue(link="http://dispatch.test/login/link/abc")
        assert deliver(smtp) == (1, 0)
        (row,) = outbox()
    assert row.status == MAIL_SENT and row.sent_at is not None
    (message,) = smtp.inbox.to("ann@example.com")
    assert message["Subject"] == "Your sign-in link"
    assert message["Message-ID"] == row.message_id
    assert "no-reply@localhost" in str(message["From"])
    assert "http://dispatch.test/login/link/abc" in text_part(message)
    assert 'href="http://dispatch.test/login/link/abc"' in html_part(message)


def test_mail_rolls_back_with_its_cause(app: Flask) -> None:
    with app.test_request_context():
        with pytest.raises(RuntimeError), db.session.begin_nested():
            queue_mail("sign_in", "ann@example.com", "Link", link="x")
            raise RuntimeError("the change that caused the mail failed")
        assert outbox() == []


@pytest.mark.parametrize(
    "address",
    [
        "ann@example.com\r\nBcc: victim@example.com",
        "ann@example.com\nBcc: victim@example.com",
        "Ann <ann@example.com>",
        "ann@example.com, bob@example.com",
        "not an address",
    ],
)
def test_header_injection_in_address_is_refused(app: Flask, address: str) -> None:
    with app.test_request_context():
        with pytest.raises(DomainError) as info:
            queue_mail("sign_in", address, "Link", link="x")
        assert info.value.status == 422
        assert outbox() == []


def test_header_injection_in_subject_is_refused(app: Flask) -> None:
    with app.test_request_context():
        with pytest.raises(DomainError) as info:
            queue_mail("sign_in", "ann@example.com", "Hi\r\nBcc: victim@example.com", link="x")
        assert info.value.status == 422
        assert outbox() == []


def test_mail_queued_while_the_server_is_down_is_delivered_once_it_is_back(
    app: Flask, smtp: SMTPServer
) -> None:
    now = utcnow() + timedelta(seconds=1)  # after every message this test queues
    clock: dict[str, Any] = {"now": now}
    with app.test_request_context():
        first = queue("a@example.com")
        assert deliver(smtp, lambda: clock["now"]) == (1, 0)
        smtp.stop()  # the mail server goes away mid-run
        queue("b@example.com")
        queue("c@example.com")
        assert deliver(smtp, lambda: clock["now"]) == (0, 2)
        waiting = [m for m in outbox() if m.status == MAIL_QUEUED]
        assert [m.attempts for m in waiting] == [1, 1]
        assert all(m.next_attempt_at > now for m in waiting)  # backoff, not a busy loop
        assert deliver(smtp, lambda: clock["now"]) == (0, 0)  # not due yet
        smtp.start()
        clock["now"] = now + retry_delay(1) + timedelta(seconds=1)
        assert deliver(smtp, lambda: clock["now"]) == (2, 0)
        clock["now"] += timedelta(days=1)
        assert deliver(smtp, lambda: clock["now"]) == (0, 0)  # nothing is sent twice
        assert all(m.status == MAIL_SENT for m in outbox())
    ids = [str(m["Message-ID"]) for m in smtp.inbox.messages]
    assert sorted(ids) == sorted({*ids}) and len(ids) == 3
    assert first.message_id in ids


def test_a_message_claimed_by_a_sender_that_died_is_sent_after_its_lease(
    app: Flask, smtp: SMTPServer
) -> None:
    from dispatch_pay.mail.delivery import LEASE, claim_next

    now = utcnow() + timedelta(seconds=1)
    with app.test_request_context():
        queue()
        assert claim_next("x@localhost", now) is not None  # a sender claims it, then dies
        assert deliver(smtp, lambda: now) == (0, 0)  # another sender leaves it alone
        assert deliver(smtp, lambda: now + LEASE + timedelta(seconds=1)) == (1, 0)
    assert len(smtp.inbox.messages) == 1


def test_backoff_doubles_and_is_capped() -> None:
    assert retry_delay(1) == timedelta(seconds=30)
    assert retry_delay(2) == timedelta(seconds=60)
    assert retry_delay(30) == timedelta(hours=2)


def test_without_mail_url_messages_are_written_as_eml_files(app: Flask, tmp_path: Path) -> None:
    transport = transport_from_url(None, tmp_path / "outbox")
    assert isinstance(transport, FileTransport)
    with app.test_request_context():
        row = queue()
        assert deliver_due(transport, "Dispatch <no-reply@localhost>") == (1, 0)
    (path,) = (tmp_path / "outbox").glob("*.eml")
    content = path.read_text()
    assert row.message_id in content and "To: ann@example.com" in content


def test_mail_url_forms() -> None:
    smtp = transport_from_url("smtp://user:p%40ss@mail.example:2525", Path("/x"))
    assert (smtp.host, smtp.port, smtp.username, smtp.password, smtp.use_ssl) == (  # type: ignore[attr-defined]
        "mail.example",
        2525,
        "user",
        "p@ss",
        False,
    )
    assert transport_from_url("smtps://mail.example", Path("/x")).port == 465  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="MAIL_URL"):
        transport_from_url("http://mail.example", Path("/x"))


def test_send_mail_command_delivers_to_mail_url(app: Flask, smtp: SMTPServer) -> None:
    with app.test_request_context():
        queue()
    previous = app.config["MAIL_URL"]
    app.config["MAIL_URL"] = smtp.url
    try:
        with app.app_context():
            result = app.test_cli_runner().invoke(args=["send-mail"])
    finally:
        app.config["MAIL_URL"] = previous
    assert result.exit_code == 0, result.output
    assert "1 sent" in result.output
    assert len(smtp.inbox.to("ann@example.com")) == 1
