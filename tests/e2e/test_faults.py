"""Faults: Stripe hanging, refusing or losing its answer; the database going away during a
webhook; a worker killed in the middle of a purchase. Money is never lost or doubled.

The Stripe tests run in-process on every backend against a localstripe of their own (it
is frozen and stopped here), behind a FaultProxy. The database and worker tests run the
app under gunicorn on a PostgreSQL database of their own, since gunicorn commits for real.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, func, select, text

from dispatch_pay import create_app
from dispatch_pay.config import load_config
from dispatch_pay.wallet.audit import audit
from dispatch_pay.wallet.ledger import locked_wallet
from models import ENTRY_TOPUP, LedgerEntry, Purchase, TopUp, Wallet, db
from models.base import build_engine
from tests.conftest import TEST_DATABASE_URL
from tests.conftest import test_config as app_config
from tests.support import ledger_check
from tests.support.factories import bearer, make_article, make_token, make_user, reader_with_own_id
from tests.support.faults import (
    CUT,
    DROP_RESPONSES,
    FORWARD,
    FREEZE,
    STRIPE_TIMEOUT,
    FaultProxy,
    FaultyStripe,
    backend_alive,
    backends_waiting_on_locks,
    child_pids,
    committing_session,
    fault_app,
    faulty_stripe,
    own_postgres_database,
    process_gone,
    scalar,
    stripe_fault_app,
)
from tests.support.servers import AppServer, wait_until
from tests.support.stripe_helpers import (
    WEBHOOK_SECRET,
    card_payment_method,
    event,
    payment_intent_obj,
    recorded_topup,
    signed,
)
from tests.support.stripe_helpers import stripe_client as stripe_api

__all__ = ["fault_app", "faulty_stripe"]  # fixtures: pytest finds them as attributes here
# stripe-python sleeps between attempts (0.5 s and more); anything past this is a hang.
SLACK = 1.5
# Ids no other reader of the run has: this localstripe keeps the PaymentIntents of every
# test of the module, and SQLite reuses the ids of rolled-back rows.
_reader_ids = itertools.count(7_000_000)


# --- Stripe faults (every backend) ----------------------------------------------------------


@dataclass
class Reader:
    id: int
    token: str


def new_reader() -> Reader:
    user = reader_with_own_id(_reader_ids)
    return Reader(user.id, make_token(user))


def topup_request(
    client: FlaskClient, reader: Reader, payment_method: str, buy: str | None = None
) -> tuple[Any, float]:
    body: dict[str, Any] = {"amount": 500, "currency": "usd", "payment_method": payment_method}
    if buy:
        body["buy"] = buy
    headers = {**bearer(reader.token), "Idempotency-Key": f"topup-of-{reader.id}"}
    started = time.monotonic()
    response = client.post("/api/v1/wallet/topups", json=body, headers=headers)
    return response, time.monotonic() - started


def assert_unavailable_and_nothing_paid(response: Any, reader: Reader) -> None:
    assert response.status_code == 503, response.json
    assert response.json["error"]["code"] == "payment_provider_unavailable"
    assert db.session.scalar(select(func.count(LedgerEntry.id))) == 0
    assert db.session.scalar(select(func.count(Purchase.id))) == 0
    balance = db.session.scalar(select(Wallet.balance).where(Wallet.user_id == reader.id))
    assert balance in (None, 0)
    topups = db.session.scalars(select(TopUp).where(TopUp.user_id == reader.id)).all()
    assert [(t.status, t.credited_at, t.payment_intent_id) for t in topups] == [
        ("failed", None, None)
    ]


@pytest.mark.parametrize("hang", ["process_frozen", "network_black_hole"])
def test_a_hanging_stripe_is_a_503_within_the_timeout_and_nothing_is_paid(
    backend: tuple[str, Engine],
    faulty_stripe: FaultyStripe,
    app: Flask,
    db_connection: Any,
    hang: str,
) -> None:
    # With one retry the two attempts share the budget: the reader still waits no longer.
    own = stripe_fault_app(backend, faulty_stripe, retries=1)
    with own.app_context():
        client = own.test_client()
        reader = new_reader()
        article = make_article(price=39)
        payment_method = card_payment_method(faulty_stripe.server.base)
        # SIGSTOP: the kernel still accepts connections, nobody answers. Or the proxy
        # swallows every byte, as a dead network path would.
        if hang == "process_frozen":
            faulty_stripe.server.pause()
        else:
            faulty_stripe.proxy.set_mode(FREEZE)
        try:
            response, elapsed = topup_request(client, reader, payment_method, article.slug)
        finally:
            faulty_stripe.server.resume()
            faulty_stripe.proxy.set_mode(CUT)  # drops the frozen connections
            faulty_stripe.proxy.set_mode(FORWARD)

        assert_unavailable_and_nothing_paid(response, reader)
        assert STRIPE_TIMEOUT * 0.9 <= elapsed < STRIPE_TIMEOUT + SLACK
        page = client.get(f"/api/v1/articles/{article.slug}", headers=bearer(reader.token))
        assert page.status_code == 402


def test_a_stopped_stripe_is_a_503_at_once_and_nothing_is_paid(
    fault_app: Flask, faulty_stripe: FaultyStripe
) -> None:
    client = fault_app.test_client()
    reader = new_reader()
    payment_method = card_payment_method(faulty_stripe.server.base)
    faulty_stripe.server.stop()
    try:
        response, elapsed = topup_request(client, reader, payment_method)
    finally:
        faulty_stripe.server.start()

    assert_unavailable_and_nothing_paid(response, reader)
    assert elapsed < STRIPE_TIMEOUT


def test_the_stripe_timeout_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("STRIPE_TIMEOUT_SECONDS", raising=False)
    monkeypatch.delenv("STRIPE_NETWORK_RETRIES", raising=False)
    assert load_config(tmp_path)["STRIPE_TIMEOUT_SECONDS"] == 10.0
    monkeypatch.setenv("STRIPE_TIMEOUT_SECONDS", "3.5")
    monkeypatch.setenv("STRIPE_NETWORK_RETRIES", "0")
    config = load_config(tmp_path)
    assert (config["STRIPE_TIMEOUT_SECONDS"], config["STRIPE_NETWORK_RETRIES"]) == (3.5, 0)


def reader_intents(base: str, reader: Reader) -> list[dict[str, Any]]:
    page = stripe_api(base).v1.payment_intents.list(params={"limit": 100})
    intents = [json.loads(json.dumps(pi.to_dict())) for pi in page.data]
    return [
        i for i in intents if (i.get("metadata") or {}).get("dispatch_reader") == str(reader.id)
    ]


def credits(pi_id: str) -> list[int]:
    return list(
        db.session.scalars(
            select(LedgerEntry.amount).where(
                LedgerEntry.kind == ENTRY_TOPUP, LedgerEntry.reference == pi_id
            )
        )
    )


def deliver(client: FlaskClient, evt: dict[str, Any]) -> str:
    payload, headers = signed(evt)
    response = client.post("/webhooks/stripe", data=payload, headers=headers)
    assert response.status_code == 200, response.json
    return str(response.json["outcome"])


def reconcile(app: Flask) -> str:
    result = app.test_cli_runner().invoke(args=["reconcile"])
    assert result.exit_code == 0, result.output
    return str(result.output)


@pytest.mark.parametrize("first", ["webhook", "reconcile"])
def test_a_charge_whose_answer_was_lost_is_credited_once_later(
    fault_app: Flask, faulty_stripe: FaultyStripe, first: str
) -> None:
    client = fault_app.test_client()
    reader = new_reader()
    article = make_article(price=39)
    payment_method = card_payment_method(faulty_stripe.server.base)
    faulty_stripe.proxy.set_mode(DROP_RESPONSES)
    forwarded = faulty_stripe.proxy.forwarded_requests

    response, elapsed = topup_request(client, reader, payment_method, article.slug)

    assert_unavailable_and_nothing_paid(response, reader)
    assert elapsed < STRIPE_TIMEOUT + SLACK
    assert faulty_stripe.proxy.forwarded_requests == forwarded + 1
    faulty_stripe.proxy.set_mode(FORWARD)
    # Stripe did charge the card: one succeeded PaymentIntent with our metadata.
    (charged,) = reader_intents(faulty_stripe.server.base, reader)
    assert charged["status"] == "succeeded"
    webhook = event("payment_intent.succeeded", charged)

    if first == "webhook":
        assert deliver(client, webhook) == "credited"
        assert charged["id"] not in reconcile(fault_app)
    else:
        assert f"credited {charged['id']}" in reconcile(fault_app)
        assert deliver(client, webhook) == "already_credited"
    assert deliver(client, webhook) == "duplicate"
    assert deliver(client, event("payment_intent.succeeded", charged)) == "already_credited"
    assert charged["id"] not in reconcile(fault_app)

    assert credits(charged["id"]) == [500]
    topup = db.session.scalars(select(TopUp).where(TopUp.user_id == reader.id)).one()
    assert (topup.payment_intent_id, topup.status) == (charged["id"], "succeeded")
    wallet = client.get("/api/v1/wallet", headers=bearer(reader.token)).json
    assert wallet["balance"] == {"amount": 461, "currency": "usd"}  # and the article bought
    page = client.get(f"/api/v1/articles/{article.slug}", headers=bearer(reader.token))
    assert page.status_code == 200
    # The reader's retry with the same key gets that top-up, and no second charge.
    retry, _ = topup_request(client, reader, payment_method, article.slug)
    assert retry.status_code == 201, retry.json
    assert (retry.json["topup"]["id"], retry.json["topup"]["status"]) == (
        charged["id"],
        "succeeded",
    )
    assert len(reader_intents(faulty_stripe.server.base, reader)) == 1
    assert credits(charged["id"]) == [500]
    assert audit() == []


# --- the database and the workers (PostgreSQL, gunicorn) -------------------------------------


@dataclass
class FaultSite:
    """A PostgreSQL database of its own, and the app under gunicorn reaching it through a
    FaultProxy, with one worker so that the test knows which process serves it."""

    url: str
    engine: Engine
    proxy: FaultProxy
    server: AppServer
    app: Flask

    def post_event(self, evt: dict[str, Any]) -> requests.Response:
        payload, headers = signed(evt)
        return requests.post(
            f"{self.server.base}/webhooks/stripe", data=payload, headers=headers, timeout=30
        )


@pytest.fixture(scope="module")
def fault_site(artifacts: Path) -> Iterator[FaultSite]:
    if not TEST_DATABASE_URL:
        pytest.skip("needs PostgreSQL: set TEST_DATABASE_URL")
    url = own_postgres_database(TEST_DATABASE_URL, "e2e_faults")
    engine = build_engine(url)
    direct = engine.url
    proxy = FaultProxy(direct.port or 5432, direct.host or "127.0.0.1")
    through_proxy = direct.set(port=proxy.port).render_as_string(hide_password=False)
    server = AppServer(
        artifacts,
        {
            "DATABASE_URL": through_proxy,
            "SECRET_KEY": "fault-tests-secret-key",
            "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "STRIPE_SECRET_KEY": "",
            "REDIS_URL": "",
        },
        workers=1,
        name="faults-app",
    )
    server.start()
    app = create_app(app_config(url), configure_database=False)
    try:
        yield FaultSite(url, engine, proxy, server, app)
    finally:
        server.stop()
        proxy.close()
        engine.dispose()


@dataclass
class SiteReader:
    id: int
    token: str
    wallet_id: int


def site_reader(site: FaultSite) -> SiteReader:
    """A reader with an (empty) wallet, committed to the site's database."""
    with site.app.app_context(), committing_session(site.engine):
        user = make_user()
        token = make_token(user)
        wallet = locked_wallet(user.id, "usd")
        db.session.commit()
        return SiteReader(user.id, token, wallet.id)


def site_audit(site: FaultSite) -> list[str]:
    return ledger_check.audit_database(site.url)


def topup_event(site: FaultSite, reader: SiteReader, amount: int, pi_id: str) -> dict[str, Any]:
    """Stripe's success event for a top-up the site recorded for the reader."""
    with committing_session(site.engine):
        reference = recorded_topup(reader.id, amount)
    obj = payment_intent_obj(pi_id, amount, reader.id, reference=reference)
    return event("payment_intent.succeeded", obj)


def in_thread(target: Any) -> tuple[threading.Thread, dict[str, Any]]:
    """Run a request in a thread; its answer (or exception) lands in the returned dict."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["response"] = target()
        except requests.RequestException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def blocked_backend(site: FaultSite) -> int:
    """The app's database backend that waits for the lock the test holds."""
    found: list[int] = []
    assert wait_until(lambda: bool(found.extend(backends_waiting_on_locks(site.engine)) or found))
    return found[0]


@pytest.mark.postgres_only
@pytest.mark.e2e
@pytest.mark.parametrize("fault", ["network_cut", "backend_terminated"])
def test_the_database_going_away_during_a_webhook_is_a_5xx_and_the_retry_credits_once(
    fault_site: FaultSite, fault: str
) -> None:
    site = fault_site
    reader = site_reader(site)
    pi_id = f"pi_dbfault_{fault}_{reader.id}"
    evt = topup_event(site, reader, 700, pi_id)
    holder = site.engine.connect()
    holder.begin()
    # The webhook stores the event, then waits for the wallet's row lock: the test holds
    # it, so the database goes away in the middle of the webhook's transaction.
    holder.execute(
        text("SELECT id FROM wallets WHERE id = :id FOR UPDATE"), {"id": reader.wallet_id}
    )
    thread, outcome = in_thread(lambda: site.post_event(evt))
    backend = blocked_backend(site)
    try:
        if fault == "network_cut":
            site.proxy.set_mode(CUT)
        else:
            holder.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
        thread.join(timeout=30)
    finally:
        holder.rollback()
        holder.close()
    assert wait_until(lambda: not backend_alive(site.engine, backend))

    response = outcome["response"]
    assert 500 <= response.status_code < 600, response.text
    assert response.json()["error"]["code"] == "database_unavailable"
    if fault == "network_cut":
        # Stripe retries while the database is still away: 5xx again, nothing stored.
        again = site.post_event(evt)
        assert again.status_code == 503, again.text
        site.proxy.set_mode(FORWARD)
    assert (
        scalar(
            site.engine,
            "SELECT count(*) FROM webhook_events WHERE stripe_event_id = :e",
            e=evt["id"],
        )
        == 0
    )
    assert (
        scalar(site.engine, "SELECT count(*) FROM ledger_entries WHERE reference = :p", p=pi_id)
        == 0
    )

    retry = site.post_event(evt)
    assert retry.status_code == 200, retry.text
    assert retry.json()["outcome"] == "credited"
    duplicate = site.post_event(evt)
    assert (duplicate.status_code, duplicate.json()["outcome"]) == (200, "duplicate")

    assert (
        scalar(site.engine, "SELECT balance FROM wallets WHERE id = :w", w=reader.wallet_id) == 700
    )
    assert (
        scalar(site.engine, "SELECT count(*) FROM ledger_entries WHERE reference = :p", p=pi_id)
        == 1
    )
    assert site_audit(site) == []


@pytest.mark.postgres_only
@pytest.mark.e2e
def test_a_worker_killed_in_the_middle_of_a_purchase_leaves_nothing_half_done(
    fault_site: FaultSite,
) -> None:
    site = fault_site
    site.proxy.set_mode(FORWARD)
    reader = site_reader(site)
    assert (
        site.post_event(topup_event(site, reader, 500, f"pi_kill_{reader.id}")).status_code == 200
    )
    with site.app.app_context(), committing_session(site.engine):
        slug = make_article(price=120).slug
    url = f"{site.server.base}/api/v1/articles/{slug}/purchase"
    buy = lambda: requests.post(url, headers=bearer(reader.token), timeout=30)  # noqa: E731
    holder = site.engine.connect()
    holder.begin()
    # The purchase debits the wallet, then entitles the reader: with the entitlements
    # table locked, the worker stops between the two, in the middle of its transaction.
    holder.execute(text("LOCK TABLE entitlements IN EXCLUSIVE MODE"))
    thread, outcome = in_thread(buy)
    backend = blocked_backend(site)
    assert site.server.proc is not None
    (worker,) = child_pids(site.server.proc.pid)
    os.kill(worker, signal.SIGKILL)
    thread.join(timeout=30)
    holder.rollback()
    holder.close()
    assert wait_until(lambda: process_gone(worker))
    assert wait_until(lambda: not backend_alive(site.engine, backend))

    assert "response" not in outcome or outcome["response"].status_code >= 500
    assert (
        scalar(site.engine, "SELECT count(*) FROM purchases WHERE user_id = :u", u=reader.id) == 0
    )
    assert (
        scalar(site.engine, "SELECT count(*) FROM entitlements WHERE user_id = :u", u=reader.id)
        == 0
    )
    assert (
        scalar(
            site.engine,
            "SELECT count(*) FROM ledger_entries WHERE wallet_id = :w",
            w=reader.wallet_id,
        )
        == 1
    )
    assert (
        scalar(site.engine, "SELECT balance FROM wallets WHERE id = :w", w=reader.wallet_id) == 500
    )
    assert site_audit(site) == []
    # gunicorn starts a new worker; the reader buys the article, once.
    assert wait_until(lambda: len(child_pids(site.server.proc.pid)) == 1 and _healthy(site))
    bought = buy()
    assert bought.status_code == 201, bought.text
    assert bought.json()["wallet"]["balance"] == {"amount": 380, "currency": "usd"}
    assert buy().status_code == 200
    assert site_audit(site) == []


def _healthy(site: FaultSite) -> bool:
    try:
        return requests.get(f"{site.server.base}/healthz", timeout=2).status_code == 200
    except requests.RequestException:
        return False
