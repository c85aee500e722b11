"""A publish racing a contradicted report never leaves a contradicted claim on sale.

Real PostgreSQL transactions in two threads: the report's transaction is held open
while the publish runs. Without the article lock, the publish read the clean report,
committed, and the contradicted report landed on the live text of a published article.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from flask import Flask
from sqlalchemy import select, text

from dispatch_pay import create_app
from dispatch_pay.catalog.services import find_article
from dispatch_pay.cli import alembic_config
from dispatch_pay.errors import DomainError
from dispatch_pay.publisher.services import publish, unpublish
from dispatch_pay.verification.services import attach_report
from models import STATUS_PUBLISHED, Article, db
from tests.conftest import test_config as app_config
from tests.support.factories import claims, make_article
from tests.support.live import committing_sessions, private_database

pytestmark = [pytest.mark.postgres_only]


@pytest.fixture(scope="module")
def race_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    with private_database(Path(tmp_path_factory.mktemp("verify-race"))) as url:
        assert url.startswith("postgresql"), "postgres_only: TEST_DATABASE_URL must be set"
        command.upgrade(alembic_config(url), "head")
        app = create_app(app_config(url))
        with committing_sessions(url):
            yield app


def contradicted_report() -> dict[str, object]:
    return {
        "verifier": "race",
        "checked_at": datetime(2026, 11, 2, tzinfo=UTC),
        "claims": claims("supported", "contradicted"),
    }


def on_sale_with_contradiction(app: Flask, article_id: int) -> bool:
    with app.app_context():
        article = db.session.scalar(select(Article).where(Article.id == article_id))
        assert article is not None
        live = article.live_revision
        report = live.report if live is not None else None
        return (
            article.status == STATUS_PUBLISHED
            and report is not None
            and report.contradicted_count > 0
        )


def publish_is_waiting(app: Flask) -> bool:
    with app.app_context():
        waiting = db.session.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
        )
        db.session.rollback()
        return bool(waiting)


@pytest.mark.parametrize("published_before", [False, True])
def test_publish_while_a_contradicted_report_is_being_attached(
    race_app: Flask, published_before: bool
) -> None:
    with race_app.app_context():
        article = make_article(verdicts=("supported",), published=published_before)
        if published_before:  # off sale by hand, about to be put back
            unpublish(article)
            db.session.commit()
        article_id, slug = article.id, article.slug

    attached = threading.Event()
    release = threading.Event()
    outcome: dict[str, object] = {}

    def attach() -> None:
        with race_app.app_context():
            target = db.session.get(Article, article_id)
            assert target is not None
            attach_report(target, contradicted_report())
            db.session.flush()
            attached.set()
            release.wait(timeout=30)
            db.session.commit()

    def put_on_sale() -> None:
        with race_app.app_context():
            try:
                publish(find_article(slug))
                db.session.commit()
                outcome["publish"] = "published"
            except DomainError as exc:
                db.session.rollback()
                outcome["publish"] = exc.code

    reporter = threading.Thread(target=attach)
    reporter.start()
    assert attached.wait(timeout=30)
    publisher = threading.Thread(target=put_on_sale)
    publisher.start()
    # Hold the report's transaction until the publish has either finished (no lock) or
    # is waiting for the article's lock.
    deadline = time.monotonic() + 20
    while "publish" not in outcome and not publish_is_waiting(race_app):
        assert time.monotonic() < deadline, "the publish neither finished nor waited"
        time.sleep(0.02)
    release.set()
    reporter.join(timeout=30)
    publisher.join(timeout=30)

    assert outcome["publish"] == "contradicted_claims"
    assert not on_sale_with_contradiction(race_app, article_id)
