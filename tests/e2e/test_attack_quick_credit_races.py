"""Attack, round 2: the quick credit (webhooks/quick_credit.py) racing what else touches the
same top-up, wallet or event on PostgreSQL.

The quick credit runs as in production (`quick_credits_of`: its own per-thread autocommit
connections); the view, the top-up request and the services run through the race app's
committing sessions. Where an interleaving needs one party to be at a given point while
another acts, that party is held there by a pause put on one of the functions it calls
(nothing else about it changes), or a row or key is held by hand on a connection of its
own; the test waits until PostgreSQL shows the other party waiting, so the order is
always the same.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, text
from werkzeug.test import Client

from dispatch_pay.payments import services as payments
from dispatch_pay.payments.gateway import provider_unavailable
from dispatch_pay.wallet import crediting
from dispatch_pay.wallet.audit import audit
from dispatch_pay.webhooks.quick_credit import QuickCredits
from dispatch_pay.webhooks.services import EVENT_ID_LOCK
from models import (
    ENTRY_TOPUP,
    LedgerEntry,
    OutboxMessage,
    TopUp,
    TopUpStatus,
    User,
    WebhookEvent,
    db,
)
from tests.e2e import test_concurrency as races
from tests.e2e.test_concurrency import count, fund, quick_credits_of, wallet_of
from tests.support.factories import bearer, make_token, make_user
from tests.support.servers import LocalStripe
from tests.support.stripe_helpers import (
    card_payment_method,
    event,
    payment_intent_obj,
    recorded_topup,
    signed,
    stripe_intent_of,
)

pytestmark = [pytest.mark.postgres_only]

# The race app of test_concurrency (a schema and a localstripe of this module's own).
own_stripe = races.own_stripe
race_app = races.race_app

WEBHOOK = "/webhooks/stripe"
VIEW = WEBHOOK + "?via=view"  # a query string: the Flask view answers


# -- helpers ------------------------------------------------------------------------------


def learned_quick(app: Flask, made: list[Any]) -> QuickCredits:
    """A production-mode quick credit that has learned the view's headers (its first
    plain credit is the view's; it answers before Flask from then on). Every connection
    it opens is put in `made` (to be closed when the test ends)."""
    quick = quick_credits_of(app)
    runner: Any = quick.statement
    connect = runner._connect

    def tracked() -> Any:
        connection = connect()
        made.append(connection)
        return connection

    runner._connect = tracked
    with app.app_context():
        reader_id = make_user().id
        fund(reader_id, 100)
        reference = recorded_topup(reader_id, 500)
    delivery = success_of(f"pi_learn_{secrets.token_hex(8)}", reader_id, reference)
    first = Client(quick).post(WEBHOOK, data=delivery[0], headers=delivery[1])
    assert first.status_code == 200 and quick.headers is not None
    return quick


def success_of(pi_id: str, reader_id: int, reference: str, amount: int = 500) -> Any:
    obj = payment_intent_obj(pi_id, amount, reader_id, reference=reference)
    return signed(event("payment_intent.succeeded", obj))


def post(app: Any, delivery: tuple[bytes, dict[str, str]], url: str = WEBHOOK) -> Any:
    return Client(app).post(url, data=delivery[0], headers=delivery[1])


class Pause:
    """Put on a function: the first call made in a thread that `arm`ed it stops there
    (`reached` is set) until `release`; every other call runs as before."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> None:
        self.original: Callable[..., Any] = getattr(owner, name)
        self.reached = threading.Event()
        self.go = threading.Event()
        self.local = threading.local()
        monkeypatch.setattr(owner, name, self)

    def arm(self) -> None:
        self.local.armed = True

    def release(self) -> None:
        self.go.set()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if getattr(self.local, "armed", False):
            self.local.armed = False
            self.reached.set()
            assert self.go.wait(timeout=30)
        return self.original(*args, **kwargs)


def in_thread(work: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = work()
        except BaseException as exc:  # reported by the test
            result["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


def wait_for_lock_waiter(app: Flask, query_part: str, timeout: float = 10) -> None:
    """Until some backend waits on a lock while running a statement containing `query_part`."""
    deadline = time.monotonic() + timeout
    with app.app_context():
        while time.monotonic() < deadline:
            found = db.session.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query LIKE :q AND pid <> pg_backend_pid()"
                ),
                {"q": f"%{query_part}%"},
            )
            db.session.commit()
            if found:
                return
            time.sleep(0.02)
    raise AssertionError(f"nobody waited on a lock in a statement with {query_part!r}")


def topup_by_reference(reference: str) -> TopUp:
    topup = db.session.scalar(
        select(TopUp).where(TopUp.reference == reference).execution_options(populate_existing=True)
    )
    assert topup is not None
    return topup


@pytest.fixture
def quick(race_app: Flask) -> Iterator[QuickCredits]:
    made: list[Any] = []
    yield learned_quick(race_app, made)
    for connection in made:  # each racer thread's, kept open by the quick path
        with contextlib.suppress(Exception):
            connection.close()


# -- 1. the top-up request timing out while the quick credit lands ------------------------


def test_a_quick_credit_landing_while_the_topup_request_times_out_stays_credited(
    race_app: Flask,
    own_stripe: LocalStripe,
    quick: QuickCredits,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """POST /wallet/topups: Stripe charges the card but our call times out (the contract's
    "Stripe frozen during a top-up"). Stripe's `payment_intent.succeeded` arrives within
    that time and the quick credit credits it (one round trip: it easily beats the
    timeout). The request then records the failure with `record_failure`, whose guard
    (`status != SUCCEEDED`) reads the top-up object loaded before the Stripe call
    (sessions do not expire on commit), so it writes status failed and failure_code
    provider_unavailable over the credit; a retry with the same Idempotency-Key was told
    402 card_declined, for a top-up in their wallet. Now `record_failure` locks the row
    and reads it afresh: a credited top-up stays as it is."""
    with race_app.app_context():
        reader = make_user()
        reader_id = reader.id
        token = make_token(reader)
        fund(reader_id, 100)
    real_create_intent = payments.create_intent
    heard: dict[str, Any] = {}

    def charged_then_timed_out(request: payments.IntentRequest) -> Any:
        intent = real_create_intent(request)  # Stripe took the money
        assert intent.status == "succeeded"
        as_sent = stripe_intent_of(own_stripe.base, intent.id)
        answer = post(quick, signed(event("payment_intent.succeeded", as_sent)))
        heard["outcome"] = answer.json
        heard["pi"] = intent.id
        raise payments.TopUpFailure(
            request.topup_id,
            "provider_unavailable",
            None,
            provider_unavailable(True),
            outcome_unknown=True,
        )

    monkeypatch.setattr(payments, "create_intent", charged_then_timed_out)
    body = {
        "amount": 500,
        "currency": "usd",
        "payment_method": card_payment_method(own_stripe.base),
    }
    headers = {**bearer(token), "Idempotency-Key": f"atk2-{secrets.token_hex(6)}"}
    first = race_app.test_client().post("/api/v1/wallet/topups", json=body, headers=headers)
    assert heard["outcome"] == {"outcome": "credited", "received": True}  # quick credited
    assert first.status_code == 503

    with race_app.app_context():
        assert wallet_of(reader_id).balance == 100 + 500
        topup = db.session.scalar(
            select(TopUp)
            .where(TopUp.payment_intent_id == heard["pi"])
            .execution_options(populate_existing=True)
        )
        assert topup is not None and topup.credited_at is not None
        problems = audit()
        status, failure_code = topup.status, topup.failure_code
    monkeypatch.undo()
    retry = race_app.test_client().post("/api/v1/wallet/topups", json=body, headers=headers)
    assert (status, failure_code) == (TopUpStatus.SUCCEEDED, None)
    assert problems == []
    # Same key, same top-up: it is in the wallet, not declined.
    assert retry.status_code == 201, retry.json


# -- 2. a deadlock between the view and the quick credit on one event ---------------------


def test_a_slow_view_and_the_quick_credit_of_one_event_do_not_deadlock(
    race_app: Flask, quick: QuickCredits, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two deliveries of one `payment_intent.succeeded` (Stripe redelivers an event whose
    first delivery is slow). The first went to the view (a row was locked at that
    moment): it stored the event id (uncommitted) and is on its way to lock the wallet.
    The second reaches the quick credit, whose snapshot does not see the event: it locks
    the top-up and the wallet (SKIP LOCKED finds them free) and then waits on the event
    id's unique index, holding both. When the view asked for the wallet more than
    deadlock_timeout later, PostgreSQL aborted the view: 503 for a delivery the view
    alone answers 200 (the second waits and finds a duplicate). Now the quick credit only
    tries the event id's lock, which the view holds: it leaves the second delivery to the
    view."""
    with race_app.app_context():
        reader_id = make_user().id
        fund(reader_id, 100)
        reference = recorded_topup(reader_id, 500)
        timeout = db.session.scalar(text("SELECT current_setting('deadlock_timeout')"))
        db.session.commit()
    assert timeout == "1s"
    delivery = success_of(f"pi_dead_{secrets.token_hex(8)}", reader_id, reference)
    pause = Pause(monkeypatch, crediting, "locked_wallet")

    def slow_view() -> Any:
        pause.arm()
        return post(race_app.wsgi_app, delivery, VIEW)

    view_thread, viewed = in_thread(slow_view)
    assert pause.reached.wait(timeout=10)  # the event is stored (uncommitted), no lock yet
    quick_thread, quicked = in_thread(lambda: post(quick, delivery))
    # The quick credit no longer waits on the event id: it finds the id's lock held and
    # leaves the delivery to the view, which waits for the first one to commit.
    wait_for_lock_waiter(race_app, "pg_advisory_xact_lock")
    time.sleep(1.5)  # longer than deadlock_timeout: any deadlock check has run
    pause.release()
    view_thread.join(timeout=30)
    quick_thread.join(timeout=30)
    assert "error" not in viewed and "error" not in quicked, (viewed, quicked)

    outcomes = sorted(
        (r.status_code, (r.json or {}).get("outcome")) for r in (viewed["value"], quicked["value"])
    )
    with race_app.app_context():
        stored = count(WebhookEvent, WebhookEvent.stripe_event_id.like("evt_test_%"))
        assert stored >= 1
        assert wallet_of(reader_id).balance == 100 + 500
        assert count(LedgerEntry, LedgerEntry.kind == ENTRY_TOPUP) >= 1
    assert outcomes == [(200, "credited"), (200, "duplicate")], outcomes


# -- 3. the statement's snapshot, taken before it waits ------------------------------------


def test_the_receipt_of_a_credit_held_up_by_another_delivery_goes_to_the_current_address(
    race_app: Flask, quick: QuickCredits
) -> None:
    """The statement's snapshot is taken before it waits: when another transaction holds
    the same event id uncommitted (a delivery of it in the view that then fails, as in
    the deadlock above, held here by hand), the quick credit locks the top-up and the
    wallet and waits on the event id's unique index. The reader's row is not locked, so
    the reader changes their address meanwhile (committed). The holder rolls back and
    the statement went on with the address of its snapshot: the receipt of money that
    landed after the change was queued to the address the reader left. Now the quick
    credit never waits (the holder holds the id's lock, as the view does): the delivery
    goes to the view, which reads the reader once it has the lock."""
    with race_app.app_context():
        reader = make_user()
        reader_id, old_address = reader.id, reader.email
        fund(reader_id, 100)
        reference = recorded_topup(reader_id, 500)
    delivery = success_of(f"pi_addr_{secrets.token_hex(8)}", reader_id, reference)
    event_id = json.loads(delivery[0])["id"]
    new_address = f"moved-{secrets.token_hex(4)}@example.com"

    with race_app.app_context():
        assert db.engine is not None
        holder = db.engine.connect()
        try:
            holder.begin()
            # As the view stores an event: the id's lock first, then the row.
            holder.execute(EVENT_ID_LOCK, {"event_id": event_id})
            holder.execute(
                text(
                    "INSERT INTO webhook_events (stripe_event_id, type, livemode, outcome, "
                    "payload, received_at) VALUES (:id, 'payment_intent.succeeded', false, "
                    "'received', CAST('{}' AS JSON), now())"
                ),
                {"id": event_id},
            )
            thread, result = in_thread(lambda: post(quick, delivery))
            wait_for_lock_waiter(race_app, "pg_advisory_xact_lock")  # in the view, as above
            with race_app.app_context():  # the reader's new address, committed
                user = db.session.get(User, reader_id)
                assert user is not None
                user.email = new_address
                db.session.commit()
            holder.rollback()
        finally:
            holder.close()
    thread.join(timeout=30)
    assert "error" not in result, result
    assert result["value"].json == {"outcome": "credited", "received": True}

    with race_app.app_context():
        assert wallet_of(reader_id).balance == 100 + 500
        receipts = db.session.scalars(
            select(OutboxMessage.to_address).where(
                OutboxMessage.kind == "receipt",
                OutboxMessage.to_address.in_([old_address, new_address]),
            )
        ).all()
        assert receipts == [new_address]
