"""Real concurrency on PostgreSQL: parallel purchases, duplicate webhooks, credit races.

Every thread has its own session and connection and commits for real, so these tests
cannot use the rolled-back per-test transaction: they run on a schema of their own
(dropped afterwards) and a localstripe of their own (so that `reconcile` sees only
their PaymentIntents). All racers of a test wait on a barrier and start together.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
from alembic import command
from flask import Flask
from sqlalchemy import func, select
from werkzeug.test import Client

from dispatch_pay import create_app
from dispatch_pay.cli import alembic_config
from dispatch_pay.payments import services as payments
from dispatch_pay.payments.gateway import Intent, require_gateway
from dispatch_pay.wallet import crediting
from dispatch_pay.wallet.api import PURCHASE_RESULT
from dispatch_pay.wallet.audit import audit
from dispatch_pay.wallet.ledger import locked_wallet, post_entry
from dispatch_pay.wallet.quick_purchase import QuickPurchases
from dispatch_pay.webhooks.quick_credit import QuickCredits
from models import (
    ENTRY_ADJUSTMENT,
    ENTRY_TOPUP,
    Entitlement,
    LedgerEntry,
    OutboxMessage,
    Purchase,
    Wallet,
    WebhookEvent,
    db,
)
from tests.conftest import test_config as app_config
from tests.support.factories import (
    bearer,
    make_agent_token,
    make_article,
    make_token,
    make_user,
)
from tests.support.live import committing_sessions, private_database
from tests.support.servers import LocalStripe
from tests.support.stripe_helpers import (
    WEBHOOK_SECRET,
    card_payment_method,
    event,
    payment_intent_obj,
    recorded_topup,
    signed,
    stripe_client,
)

pytestmark = [pytest.mark.postgres_only]
T = TypeVar("T")


@pytest.fixture(scope="module")
def own_stripe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStripe]:
    server = LocalStripe(tmp_path_factory.mktemp("race-stripe"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def race_app(tmp_path_factory: pytest.TempPathFactory, own_stripe: LocalStripe) -> Iterator[Flask]:
    with private_database(Path(tmp_path_factory.mktemp("race"))) as url:
        assert url.startswith("postgresql"), "postgres_only: TEST_DATABASE_URL must be set"
        command.upgrade(alembic_config(url), "head")
        app = create_app(
            app_config(
                url,
                STRIPE_SECRET_KEY="sk_test_race",
                STRIPE_PUBLISHABLE_KEY="pk_test_race",
                STRIPE_API_BASE=own_stripe.base,
                STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
            ),
            configure_database=False,
        )
        with committing_sessions(url):
            yield app


@pytest.fixture(autouse=True)
def books_balance_afterwards(race_app: Flask) -> Iterator[None]:
    yield
    with race_app.app_context():
        assert audit() == []


def race(count: int, racer: Callable[[int], T]) -> list[T]:
    """Run `racer(0..count-1)` in as many threads, released at the same moment."""
    start = threading.Barrier(count)

    def run(i: int) -> T:
        start.wait(timeout=30)
        return racer(i)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


def in_app(app: Flask, work: Callable[[], T]) -> T:
    """Run service code in this thread as a request would: own session, commit at the end."""
    with app.app_context():
        result = work()
        db.session.commit()
        return result


def token_in_use(app: Flask, token: str) -> str:
    """A token that has been used already. Its first use records `last_used_at`, an
    UPDATE of the token's row that would queue the racers behind each other and hide
    the race we mean to test. (The library: readers' and agents' tokens may both read it.)"""
    assert app.test_client().get("/api/v1/library", headers=bearer(token)).status_code == 200
    return token


def purchase_over_api(app: Flask, token: str, slug: str) -> tuple[int, Any]:
    response = app.test_client().post(f"/api/v1/articles/{slug}/purchase", headers=bearer(token))
    return response.status_code, response.get_json()


def fund(user_id: int, amount: int) -> None:
    wallet = locked_wallet(user_id, "usd")
    post_entry(wallet, ENTRY_ADJUSTMENT, amount, f"race-funding:{user_id}")
    db.session.commit()


def count(model: Any, *where: Any) -> int:
    return int(db.session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def wallet_of(user_id: int) -> Wallet:
    wallet = db.session.scalar(select(Wallet).where(Wallet.user_id == user_id))
    assert wallet is not None
    db.session.refresh(wallet)
    return wallet


def running_balances(wallet_id: int) -> list[int]:
    """The balance after each entry. Entries are posted under the wallet's row lock, so
    their ids are in the order the money moved."""
    amounts = db.session.scalars(
        select(LedgerEntry.amount)
        .where(LedgerEntry.wallet_id == wallet_id)
        .order_by(LedgerEntry.id)
    )
    balances, total = [], 0
    for amount in amounts:
        total += amount
        balances.append(total)
    return balances


def test_24_parallel_purchases_with_money_for_12_make_exactly_12(race_app: Flask) -> None:
    with race_app.app_context():
        reader = make_user()
        token = make_token(reader)
        slugs = [make_article(price=39).slug for _ in range(24)]
        fund(reader.id, 12 * 39)
        reader_id = reader.id
    token_in_use(race_app, token)

    results = race(24, lambda i: purchase_over_api(race_app, token, slugs[i]))

    assert Counter(status for status, _ in results) == {201: 12, 402: 12}
    for status, body in results:
        if status == 201:
            assert body["wallet"]["balance"]["amount"] >= 0
        else:
            assert body["error"]["code"] == "insufficient_funds"
    with race_app.app_context():
        wallet = wallet_of(reader_id)
        assert wallet.balance == 0
        assert min(running_balances(wallet.id)) >= 0
        assert count(Purchase, Purchase.user_id == reader_id) == 12
        assert count(Entitlement, Entitlement.user_id == reader_id) == 12


def test_the_same_article_bought_24_times_at_once_is_debited_once(race_app: Flask) -> None:
    with race_app.app_context():
        reader = make_user()
        token = make_token(reader)
        slug = make_article(price=39).slug
        fund(reader.id, 100)
        reader_id = reader.id
    token_in_use(race_app, token)

    results = race(
        24,
        lambda _i: (
            race_app.test_client()
            .post(f"/api/v1/articles/{slug}/purchase", headers=bearer(token))
            .status_code
        ),
    )

    assert Counter(results) == {201: 1, 200: 23}
    with race_app.app_context():
        assert wallet_of(reader_id).balance == 100 - 39
        assert count(Purchase, Purchase.user_id == reader_id) == 1


def test_quick_purchases_race_each_other_and_the_view_and_overspend_nothing(
    race_app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    """The purchase made before Flask, on its own per-thread connections as in production,
    racing purchases the view makes (a body it must read sends a request there)."""
    caplog.set_level("INFO", logger="dispatch_pay.request")
    quick = quick_of(race_app)
    with race_app.app_context():
        reader = make_user()
        token = make_token(reader)
        same = make_article(price=39).slug
        slugs = [make_article(price=39).slug for _ in range(24)]
        fund(reader.id, 1 + 13 * 39)
        reader_id = reader.id
    token_in_use(race_app, token)
    learn = make_article_slug_for_learning(race_app)
    first = Client(quick).post(f"/api/v1/articles/{learn}/purchase", headers=bearer(token))
    assert first.status_code == 201 and quick.headers is not None  # the view's headers learned
    plain = Client(quick).post(f"/api/v1/articles/{slugs.pop()}/purchase", headers=bearer(token))
    assert plain.status_code == 201

    def buy(slug: str, i: int) -> int:
        body = {"data": b"{}", "content_type": "application/json"} if i % 2 else {}
        viewed = {"json": {"expected_price": {"amount": 39, "currency": "usd"}}}
        response = Client(quick).post(
            f"/api/v1/articles/{slug}/purchase",
            headers=bearer(token),
            **(viewed if i % 3 == 0 else body),
        )
        return response.status_code

    assert Counter(race(24, lambda i: buy(same, i))) == {201: 1, 200: 23}
    results = race(23, lambda i: buy(slugs[i], i))
    assert Counter(results) == {201: 11, 402: 12}  # 11 x 39 left after the first three
    lines = [getattr(r, "fields", {}) for r in caplog.records]
    made = [f for f in lines if f.get("request_id") == plain.headers["X-Request-ID"]]
    assert [f.get("cache") for f in made] == ["quick-purchase"]  # not the view's
    with race_app.app_context():
        wallet = wallet_of(reader_id)
        assert wallet.balance == 0
        assert min(running_balances(wallet.id)) >= 0
        assert count(Purchase, Purchase.user_id == reader_id) == 14
        assert count(Entitlement, Entitlement.user_id == reader_id) == 14


def quick_of(app: Flask) -> QuickPurchases:
    """The quick path on its own per-thread connections, as in production, in place of
    the app's own (which in tests runs through the session)."""
    inner: Any = app.wsgi_app
    while not isinstance(inner, QuickPurchases):
        inner = getattr(inner, "inner", None) or inner.app
    return QuickPurchases(inner.app, app, PURCHASE_RESULT.dump, testing=False)


def make_article_slug_for_learning(app: Flask) -> str:
    with app.app_context():
        return make_article(price=1).slug


def post_event(app: Flask, payload: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    response = app.test_client().post("/webhooks/stripe", data=payload, headers=headers)
    return response.status_code, response.get_json()


def test_10_parallel_copies_of_one_event_credit_once(race_app: Flask) -> None:
    with race_app.app_context():
        reader_id = make_user().id  # no wallet yet: the racers also race to create it
        reference = recorded_topup(reader_id, 500)
    pi_id = f"pi_race_{secrets.token_hex(8)}"
    obj = payment_intent_obj(pi_id, 500, reader_id, reference=reference)
    evt = event("payment_intent.succeeded", obj)
    payload, headers = signed(evt)

    results = race(10, lambda _i: post_event(race_app, payload, headers))

    assert [status for status, _ in results] == [200] * 10
    assert Counter(body["outcome"] for _, body in results) == {"credited": 1, "duplicate": 9}
    with race_app.app_context():
        assert wallet_of(reader_id).balance == 500
        assert count(LedgerEntry, LedgerEntry.payment_intent_id == pi_id) == 1
        assert count(WebhookEvent, WebhookEvent.stripe_event_id == evt["id"]) == 1


def test_10_first_credits_racing_to_create_a_wallet_all_land_in_it(race_app: Flask) -> None:
    """Racers that lose the race to create the wallet (unique reader and currency) look it
    up again: it must be this reader's wallet in this currency, not any other (mutmut:
    that look-up without its reader or currency condition survived every other test)."""
    with race_app.app_context():
        reader_id, other_id = make_user().id, make_user().id
        fund(other_id, 300)  # another reader's wallet in the same currency
        in_app(race_app, lambda: locked_wallet(reader_id, "eur"))  # the reader's in another

    def first_money(i: int) -> None:
        in_app(
            race_app,
            lambda: post_entry(
                locked_wallet(reader_id, "usd"), ENTRY_ADJUSTMENT, 100, f"first:{reader_id}:{i}"
            ),
        )

    race(10, first_money)

    with race_app.app_context():
        balances = dict(
            db.session.execute(
                select(Wallet.user_id.concat(Wallet.currency), Wallet.balance).where(
                    Wallet.user_id.in_([reader_id, other_id])
                )
            ).all()
        )
        assert balances == {f"{reader_id}usd": 1000, f"{reader_id}eur": 0, f"{other_id}usd": 300}


def test_10_different_events_for_one_payment_intent_credit_once(race_app: Flask) -> None:
    with race_app.app_context():
        reader_id = make_user().id
        reference = recorded_topup(reader_id, 700)
    pi_id = f"pi_race_{secrets.token_hex(8)}"
    events = [
        event(
            "payment_intent.succeeded",
            payment_intent_obj(pi_id, 700, reader_id, reference=reference),
        )
        for _ in range(10)
    ]
    deliveries = [signed(evt) for evt in events]

    results = race(10, lambda i: post_event(race_app, *deliveries[i]))

    assert [status for status, _ in results] == [200] * 10
    assert Counter(body["outcome"] for _, body in results) == {
        "credited": 1,
        "already_credited": 9,
    }
    with race_app.app_context():
        assert wallet_of(reader_id).balance == 700
        assert count(LedgerEntry, LedgerEntry.payment_intent_id == pi_id) == 1
        ids = [evt["id"] for evt in events]
        assert count(WebhookEvent, WebhookEvent.stripe_event_id.in_(ids)) == 10


def quick_credits_of(app: Flask) -> QuickCredits:
    """The quick credit on its own per-thread connections, as in production."""
    inner: Any = app.wsgi_app
    while not isinstance(inner, QuickCredits):
        inner = getattr(inner, "inner", None) or inner.app
    return QuickCredits(inner.app, app, testing=False)


def test_quick_credits_race_each_other_the_view_and_the_synchronous_credit(
    race_app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    """One top-up's success, heard at once as copies of one event and as other events
    (before Flask, on its own connections as in production, and through the view) and by
    the synchronous answer: credited once, one receipt, every event stored once."""
    caplog.set_level("INFO", logger="dispatch_pay.request")
    quick = quick_credits_of(race_app)
    with race_app.app_context():
        reader = make_user()
        reader_id, email = reader.id, reader.email
        fund(reader_id, 100)
        learn = recorded_topup(reader_id, 500)
        references = [recorded_topup(reader_id, 500) for _ in range(2)]
    ids = [f"pi_race_{secrets.token_hex(8)}" for _ in range(3)]

    def success(pi_id: str, reference: str) -> tuple[bytes, dict[str, str]]:
        obj = payment_intent_obj(pi_id, 500, reader_id, reference=reference)
        return signed(event("payment_intent.succeeded", obj))

    def post(delivery: tuple[bytes, dict[str, str]], url: str = "/webhooks/stripe") -> Any:
        return Client(quick).post(url, data=delivery[0], headers=delivery[1])

    first = post(success(ids[0], learn))
    assert first.status_code == 200 and quick.headers is not None  # the view's headers learned
    plain = post(success(ids[1], references[0]))
    assert plain.json == {"outcome": "credited", "received": True}
    lines = [getattr(r, "fields", {}) for r in caplog.records]
    made = [f for f in lines if f.get("request_id") == plain.headers["X-Request-ID"]]
    assert [f.get("cache") for f in made] == ["quick-credit"]  # not the view's

    copy = success(ids[2], references[1])
    others = [success(ids[2], references[1]) for _ in range(4)]
    meta = {
        "dispatch_reader": str(reader_id),
        "dispatch_purpose": "wallet_topup",
        "dispatch_ref": references[1],
    }
    intent = Intent(ids[2], "succeeded", 500, "usd", meta, charge_id=f"ch_for_{ids[2]}")

    def racer(i: int) -> str:
        if i < 8:  # copies of one event: six before Flask, two through the view
            url = "/webhooks/stripe" if i < 6 else "/webhooks/stripe?via=view"
            return str(post(copy, url).json["outcome"])
        if i < 12:  # other events for the same PaymentIntent
            return str(post(others[i - 8]).json["outcome"])
        credited = in_app(race_app, lambda: crediting.credit_intent(intent))
        return "credited" if credited else "already_credited"

    outcomes = Counter(race(13, racer))
    # One copy stored (credited, or already so), seven duplicates; one credit in all.
    assert outcomes == {"duplicate": 7, "credited": 1, "already_credited": 5}
    with race_app.app_context():
        assert wallet_of(reader_id).balance == 100 + 3 * 500
        assert count(LedgerEntry, LedgerEntry.payment_intent_id == ids[2]) == 1
        assert count(OutboxMessage, OutboxMessage.to_address == email) == 3  # one per credit
        stored = [json.loads(p)["id"] for p, _ in [copy, *others]]
        assert count(WebhookEvent, WebhookEvent.stripe_event_id.in_(stored)) == 5


@pytest.mark.parametrize("buy", [False, True], ids=["top-up", "top-up-and-buy"])
def test_the_synchronous_credit_the_webhook_and_reconcile_race_and_credit_once(
    race_app: Flask, own_stripe: LocalStripe, buy: bool
) -> None:
    """Stripe has taken the money; every way of hearing about it runs at once."""
    with race_app.app_context():
        reader = make_user()
        reader_id = reader.id
        article = make_article(price=39) if buy else None
        topup, _ = payments.prepare_topup(
            reader,
            amount=500,
            currency="usd",
            payment_method=None,
            buy=article,
            idempotency_key=None,
        )
        db.session.commit()
        # What the top-up request gets from Stripe, before it applies the answer.
        request = payments.intent_request(topup.id, card_payment_method(own_stripe.base))
        db.session.commit()
        intent = payments.create_intent(request)
        db.session.commit()
    assert intent.status == "succeeded"
    as_sent = stripe_client(own_stripe.base).v1.payment_intents.retrieve(intent.id).to_dict()
    payload, headers = signed(event("payment_intent.succeeded", as_sent))

    racers: list[Callable[[], Any]] = [
        lambda: in_app(race_app, lambda: crediting.apply_intent(intent).status),
        lambda: post_event(race_app, payload, headers)[0],
        lambda: in_app(race_app, lambda: crediting.reconcile(require_gateway())),
    ]
    sync_status, webhook_status, _report = race(len(racers), lambda i: racers[i]())

    assert (sync_status, webhook_status) == ("succeeded", 200)
    with race_app.app_context():
        entries = count(
            LedgerEntry, LedgerEntry.payment_intent_id == intent.id, LedgerEntry.kind == ENTRY_TOPUP
        )
        assert entries == 1
        assert wallet_of(reader_id).balance == (500 - 39 if buy else 500)
        assert count(Purchase, Purchase.user_id == reader_id) == (1 if buy else 0)


# -- agent budgets ------------------------------------------------------------------------


def test_24_parallel_purchases_stop_at_the_daily_limit(race_app: Flask) -> None:
    with race_app.app_context():
        reader = make_user()
        token = make_agent_token(reader, max_price=39, daily_limit=100)
        slugs = [make_article(price=39).slug for _ in range(24)]
        fund(reader.id, 10_000)
        reader_id = reader.id
    token_in_use(race_app, token)

    results = race(24, lambda i: purchase_over_api(race_app, token, slugs[i]))

    assert Counter(status for status, _ in results) == {201: 2, 402: 22}
    assert {body["error"]["code"] for status, body in results if status == 402} == {
        "budget_exceeded"
    }
    with race_app.app_context():
        assert count(Purchase, Purchase.user_id == reader_id) == 2
        assert wallet_of(reader_id).balance == 10_000 - 78


def test_two_agents_of_one_reader_each_keep_their_own_limit(race_app: Flask) -> None:
    with race_app.app_context():
        reader = make_user()
        tokens = [make_agent_token(reader, max_price=50, daily_limit=100) for _ in range(2)]
        slugs = [make_article(price=50).slug for _ in range(12)]
        fund(reader.id, 10_000)
        reader_id = reader.id
    for token in tokens:
        token_in_use(race_app, token)

    results = race(12, lambda i: purchase_over_api(race_app, tokens[i % 2], slugs[i]))

    assert Counter(status for status, _ in results) == {201: 4, 402: 8}
    with race_app.app_context():
        assert count(Purchase, Purchase.user_id == reader_id) == 4
