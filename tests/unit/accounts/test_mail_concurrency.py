"""Several `send-mail` processes at once on PostgreSQL: each message delivered exactly once."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import select

from dispatch_pay import create_app
from dispatch_pay.cli import alembic_config
from dispatch_pay.mail.outbox import queue_mail
from models import MAIL_SENT, OutboxMessage, db
from tests.conftest import test_config as app_config
from tests.support.live import committing_sessions, private_database
from tests.support.mail import deliver
from tests.support.smtp import SMTPServer


@pytest.mark.postgres_only
def test_parallel_senders_deliver_each_message_exactly_once(
    smtp: SMTPServer, tmp_path: Path
) -> None:
    """Four senders at once (own sessions, real commits): SKIP LOCKED + lease, no duplicates."""
    with private_database(tmp_path) as url:
        command.upgrade(alembic_config(url), "head")
        app = create_app(app_config(url))
        with committing_sessions(url):
            with app.test_request_context():
                for i in range(40):
                    queue_mail("sign_in", f"r{i}@example.com", "Link", link="x")
                db.session.commit()
            start = threading.Barrier(4)
            results: list[tuple[int, int]] = []

            def sender() -> None:
                with app.app_context():
                    start.wait(timeout=30)
                    results.append(deliver(smtp))
                    db.session.remove()

            threads = [threading.Thread(target=sender) for _ in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
            with app.app_context():
                statuses = set(db.session.scalars(select(OutboxMessage.status)))
    assert sum(sent for sent, _ in results) == 40
    assert statuses == {MAIL_SENT}
    ids = [str(m["Message-ID"]) for m in smtp.inbox.messages]
    assert len(ids) == 40 and len(set(ids)) == 40
