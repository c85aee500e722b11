"""Money taken back: card refunds and disputes of top-ups, and readers' refunds of purchases.

Card refunds and disputes arrive as signed Stripe events built after a real top-up in
localstripe. The last section drives random histories of all of it through `ingest` and
checks the books with `audit`.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, update

from dispatch_pay.errors import DomainError
from dispatch_pay.payments.gateway import webhook_events
from dispatch_pay.payments.stripe_gateway import intent_from_payload
from dispatch_pay.wallet.audit import audit
from dispatch_pay.wallet.ledger import find_wallet
from dispatch_pay.wallet.services import purchase_article, refund_purchase
from dispatch_pay.webhooks.services import Behind, ingest
from models import (
    ENTRY_DISPUTE,
    ENTRY_REFUND,
    ENTRY_TOPUP,
    ENTRY_TOPUP_REFUNDED,
    PURCHASE_ACTIVE,
    Article,
    Dispute,
    LedgerEntry,
    Purchase,
    User,
    Wallet,
    db,
    utcnow,
)
from tests.support.factories import bearer, make_article, make_token, make_user, reader_with_own_id
from tests.support.servers import LocalStripe
from tests.support.stripe_helpers import (
    card_payment_method,
    charge_obj,
    dispute_obj,
    event,
    paid_in_stripe_unheard,
    payment_intent_obj,
    recorded_topup,
    signed,
)
from tests.support.stripe_helpers import stripe_client as stripe_api

# Readers whose PaymentIntents are made in localstripe get ids no other reader of the run
# has: localstripe outlives each test, and SQLite reuses the ids of rolled-back rows.
_reader_ids = itertools.count(8_000_000)


@dataclass
class Reader:
    user: User
    token: str


def new_reader() -> Reader:
    user = reader_with_own_id(_reader_ids)
    return Reader(user, make_token(user))


@dataclass(frozen=True)
class Paid:
    pi_id: str
    charge_id: str
    amount: int


def top_up(client: FlaskClient, base: str, reader: Reader, amount: int = 500) -> Paid:
    response = client.post(
        "/api/v1/wallet/topups",
        json={"amount": amount, "currency": "usd", "payment_method": card_payment_method(base)},
        headers=bearer(reader.token),
    )
    assert response.status_code == 201, response.json
    assert response.json["topup"]["status"] == "succeeded"
    pi_id = response.json["topup"]["id"]
    return Paid(pi_id, latest_charge(base, pi_id)["id"], amount)


def latest_charge(base: str, pi_id: str) -> dict[str, Any]:
    pi = stripe_api(base).v1.payment_intents.retrieve(pi_id).to_dict()
    charge: dict[str, Any] = json.loads(json.dumps(pi["latest_charge"]))
    return charge


def paid_directly_in_stripe(base: str, reader: Reader, amount: int = 500) -> Paid:
    """A succeeded top-up PaymentIntent the app has not heard of yet."""
    pi_id = paid_in_stripe_unheard(base, reader.user.id, amount)
    return Paid(pi_id, latest_charge(base, pi_id)["id"], amount)


def deliver(client: FlaskClient, evt: dict[str, Any]) -> str:
    payload, headers = signed(evt)
    response = client.post("/webhooks/stripe", data=payload, headers=headers)
    assert response.status_code == 200, response.json
    return str(response.json["outcome"])


def refunded(paid: Paid, reader: Reader, amount_refunded: int) -> dict[str, Any]:
    return event(
        "charge.refunded",
        charge_obj(paid.pi_id, paid.amount, amount_refunded, reader.user.id, paid.charge_id),
    )


def dispute(paid: Paid, kind: str, status: str = "needs_response") -> dict[str, Any]:
    obj = dispute_obj(f"dp_{paid.pi_id}", paid.pi_id, paid.amount, status, paid.charge_id)
    return event(f"charge.dispute.{kind}", obj)


def wallet(client: FlaskClient, reader: Reader) -> dict[str, Any]:
    response = client.get("/api/v1/wallet", headers=bearer(reader.token))
    assert response.status_code == 200
    body: dict[str, Any] = response.json
    return body


def balance(client: FlaskClient, reader: Reader) -> int:
    return int(wallet(client, reader)["balance"]["amount"])


def entry_amounts(pi_id: str, *kinds: str) -> list[int]:
    return list(
        db.session.scalars(
            select(LedgerEntry.amount)
            .where(LedgerEntry.payment_intent_id == pi_id, LedgerEntry.kind.in_(kinds))
            .order_by(LedgerEntry.id)
        )
    )


def buy(client: FlaskClient, reader: Reader, article: Article) -> Any:
    return client.post(f"/api/v1/articles/{article.slug}/purchase", headers=bearer(reader.token))


# --- card refunds ---------------------------------------------------------------------


def test_card_refunds_debit_what_is_newly_refunded_once(
    stripe_client: FlaskClient, localstripe: LocalStripe
) -> None:
    reader = new_reader()
    paid = top_up(stripe_client, localstripe.base, reader)
    partial, full = refunded(paid, reader, 200), refunded(paid, reader, 500)

    assert deliver(stripe_client, partial) == "debited 200"
    assert balance(stripe_client, reader) == 300
    assert deliver(stripe_client, full) == "debited 300"
    assert balance(stripe_client, reader) == 0
    assert deliver(stripe_client, full) == "duplicate"
    # The same facts under new event ids (Stripe retries, or a replay) change nothing.
    assert deliver(stripe_client, refunded(paid, reader, 500)) == "nothing_to_debit"
    assert deliver(stripe_client, refunded(paid, reader, 200)) == "nothing_to_debit"
    assert balance(stripe_client, reader) == 0
    assert entry_amounts(paid.pi_id, ENTRY_TOPUP_REFUNDED) == [-200, -300]
    assert wallet(stripe_client, reader)["status"] == "active"


def test_a_refund_made_in_stripe_is_applied_from_the_real_charge(
    stripe_client: FlaskClient, localstripe: LocalStripe
) -> None:
    reader = new_reader()
    paid = top_up(stripe_client, localstripe.base, reader)
    stripe_api(localstripe.base).v1.refunds.create(params={"charge": paid.charge_id, "amount": 150})
    charge = latest_charge(localstripe.base, paid.pi_id)
    assert charge["amount_refunded"] == 150

    assert deliver(stripe_client, event("charge.refunded", charge)) == "debited 150"

    assert balance(stripe_client, reader) == 350
    assert entry_amounts(paid.pi_id, ENTRY_TOPUP_REFUNDED) == [-150]


def test_refunds_delivered_out_of_order_debit_the_largest_total_once(
    stripe_client: FlaskClient, localstripe: LocalStripe
) -> None:
    reader = new_reader()
    paid = top_up(stripe_client, localstripe.base, reader)
    deliver(stripe_client, refunded(paid, reader, 400))
    deliver(stripe_client, refunded(paid, reader, 100))
    assert balance(stripe_client, reader) == 100
    assert sum(entry_amounts(paid.pi_id, ENTRY_TOPUP_REFUNDED)) == -400


def test_a_refund_that_arrives_before_the_success_converges(
    stripe_client: FlaskClient, localstripe: LocalStripe
) -> None:
    reader = new_reader()
    paid = paid_directly_in_stripe(localstripe.base, reader)
    assert balance(stripe_client, reader) == 0

    assert deliver(stripe_client, refunded(paid, reader, 200)) == "debited 200"
    assert balance(stripe_client, reader) == 300
    succeeded = stripe_api(localstripe.base).v1.payment_intents.retrieve(paid.pi_id).to_dict()
    outcome = deliver(
        stripe_client, event("payment_intent.succeeded", json.loads(json.dumps(succeeded)))
    )

    assert outcome == "already_credited"
    assert balance(stripe_client, reader) == 300
    assert entry_amounts(paid.pi_id, ENTRY_TOPUP) == [500]
    assert entry_amounts(paid.pi_id, ENTRY_TOPUP_REFUNDED) == [-200]
    assert audit() == []


def test_refunds_of_charges_that_are_not_ours_are_ignored(
    stripe_client: FlaskClient, localstripe: LocalStripe
) -> None:
    reader = new_reader()
    unknown = Paid("pi_unknown_to_stripe", "ch_unknown", 500)
    assert deliver(stripe_client, refunded(unknown, reader, 500)) == "ignored"
    foreign = stripe_api(localstripe.base).v1.payment_intents.create(
        params={
            "amount": 500,
            "currency": "usd",
            "payment_method_types": ["card"],
            "payment_method": card_payment_method(localstripe.base),
            "confirm": True,
        }
    )
    charge = latest_charge(localstripe.base, foreign.id)
    outcome = deliver(stripe_client, event("charge.refunded", {**charge, "amount_refunded": 500}))
    assert outcome == "ignored"
    assert balance(stripe_client, reader) == 0
    assert db.session.scalar(select(func.count(LedgerEntry.id))) == 0


# --- disputes ---------------------------------------------------------------------------


def test_an_open_dispute_freezes_the_wallet(
    stripe_client: FlaskClient, localstripe: LocalStripe
) -> None:
    reader = new_reader()
    article = make_article(price=39)
    paid = top_up(stripe_client, localstripe.base, reader)
    created = dispute(paid, "created")

    assert deliver(stripe_client, created) == "frozen"
    assert deliver(stripe_client, created) == "duplicate"
    assert deliver(stripe_client, dispute(paid, "created")) == "already_open"

    assert wallet(stripe_client, reader)["status"] == "frozen"
    response = buy(stripe_client, reader, article)
    assert response.status_code == 409
    assert response.json["error"]["code"] == "wallet_frozen"
    assert balance(stripe_client, reader) == 500
    stored = find_wallet(reader.user.id, "usd")
    assert stored is not None and stored.open_disputes == 1


def test_a_won_dispute_releases_the_wallet_without_a_debit(
    stripe_client: FlaskClient, localstripe: LocalStripe
) -> None:
    reader = new_reader()
    article = make_article(price=39)
    paid = top_up(stripe_client, localstripe.base, reader)
    deliver(stripe_client, dispute(paid, "created"))

    assert deliver(stripe_client, dispute(paid, "closed", "won")) == "won"
    assert deliver(stripe_client, dispute(paid, "closed", "won")) == "already_closed"

    assert wallet(stripe_client, reader)["status"] == "active"
    assert balance(stripe_client, reader) == 500
    assert entry_amounts(paid.pi_id, ENTRY_DISPUTE) == []
    assert buy(stripe_client, reader, article).status_code == 201


def test_a_lost_dispute_debits_once_and_a_negative_wallet_stays_frozen(
    stripe_client: FlaskClient, localstripe: LocalStripe
) -> None:
    reader = new_reader()
    bought, other = make_article(price=39), make_article(price=39)
    paid = top_up(stripe_client, localstripe.base, reader)
    assert buy(stripe_client, reader, bought).status_code == 201
    deliver(stripe_client, dispute(paid, "created"))
    lost = dispute(paid, "closed", "lost")

    assert deliver(stripe_client, lost) == "lost"
    assert deliver(stripe_client, lost) == "duplicate"
    assert deliver(stripe_client, dispute(paid, "closed", "lost")) == "already_closed"

    assert balance(stripe_client, reader) == -39
    assert entry_amounts(paid.pi_id, ENTRY_DISPUTE) == [-500]
    assert wallet(stripe_client, reader)["status"] == "frozen"
    stored = find_wallet(reader.user.id, "usd")
    assert stored is not None and stored.open_disputes == 0
    response = buy(stripe_client, reader, other)
    assert response.status_code == 409
    assert response.json["error"]["code"] == "wallet_frozen"
    # A new top-up pays the debt and lifts the freeze.
    top_up(stripe_client, localstripe.base, reader)
    assert wallet(stripe_client, reader)["status"] == "active"
    assert buy(stripe_client, reader, other).status_code == 201
    assert balance(stripe_client, reader) == 500 - 39 - 39


@pytest.mark.parametrize("order", ["refund_first", "dispute_first", "partial_refund_first"])
def test_clawbacks_never_exceed_the_top_up(
    stripe_client: FlaskClient, localstripe: LocalStripe, order: str
) -> None:
    reader = new_reader()
    paid = top_up(stripe_client, localstripe.base, reader)
    refund_amount = 200 if order == "partial_refund_first" else 500
    steps = [
        refunded(paid, reader, refund_amount),
        dispute(paid, "created"),
        dispute(paid, "closed", "lost"),
    ]
    if order == "dispute_first":
        steps = [*steps[1:], steps[0]]
    for step in steps:
        deliver(stripe_client, step)

    clawed = entry_amounts(paid.pi_id, ENTRY_TOPUP_REFUNDED, ENTRY_DISPUTE)
    assert sum(clawed) == -500
    assert balance(stripe_client, reader) == 0
    assert wallet(stripe_client, reader)["status"] == "active"
    assert audit() == []


@pytest.mark.parametrize("outcome", ["lost", "won"])
def test_a_dispute_closed_before_it_was_created_converges(
    stripe_client: FlaskClient, localstripe: LocalStripe, outcome: str
) -> None:
    reader = new_reader()
    paid = top_up(stripe_client, localstripe.base, reader)

    assert deliver(stripe_client, dispute(paid, "closed", outcome)) == outcome
    assert deliver(stripe_client, dispute(paid, "created")) == "already_open"

    expected = 0 if outcome == "lost" else 500
    assert balance(stripe_client, reader) == expected
    assert wallet(stripe_client, reader)["status"] == "active"
    stored = db.session.scalars(
        select(Dispute).where(Dispute.stripe_dispute_id == f"dp_{paid.pi_id}")
    ).one()
    assert (stored.status, stored.outcome) == ("closed", outcome)
    assert audit() == []


def test_a_dispute_before_the_success_credits_then_freezes(
    stripe_client: FlaskClient, localstripe: LocalStripe
) -> None:
    reader = new_reader()
    paid = paid_directly_in_stripe(localstripe.base, reader)

    assert deliver(stripe_client, dispute(paid, "created")) == "frozen"

    assert balance(stripe_client, reader) == 500
    assert wallet(stripe_client, reader)["status"] == "frozen"
    assert deliver(stripe_client, dispute(paid, "closed", "lost")) == "lost"
    assert balance(stripe_client, reader) == 0
    assert entry_amounts(paid.pi_id, ENTRY_TOPUP) == [500]


# --- readers' refunds of purchases --------------------------------------------------------


def refund(client: FlaskClient, token: str, purchase_id: int) -> Any:
    return client.post(f"/api/v1/purchases/{purchase_id}/refund", headers=bearer(token))


def bought(client: FlaskClient, reader: Reader, article: Article) -> int:
    response = buy(client, reader, article)
    assert response.status_code == 201, response.json
    return int(response.json["purchase"]["id"])


def top_up_and_buy(client: FlaskClient, base: str, reader: Reader, article: Article) -> int:
    top_up(client, base, reader)
    return bought(client, reader, article)


def backdate(purchase_id: int, **moments: datetime) -> None:
    """Move a purchase's creation or refund into the past, as time passing would."""
    db.session.execute(update(Purchase).where(Purchase.id == purchase_id).values(**moments))
    db.session.commit()


def test_the_buyer_may_refund_within_24_hours(
    stripe_client: FlaskClient, localstripe: LocalStripe
) -> None:
    reader = new_reader()
    article = make_article(price=39)
    purchase_id = top_up_and_buy(stripe_client, localstripe.base, reader, article)
    assert balance(stripe_client, reader) == 461

    response = refund(stripe_client, reader.token, purchase_id)

    assert response.status_code == 200, response.json
    assert response.json["purchase"]["status"] == "refunded"
    assert response.json["wallet"]["balance"] == {"amount": 500, "currency": "usd"}
    locked = stripe_client.get(f"/api/v1/articles/{article.slug}", headers=bearer(reader.token))
    assert locked.status_code == 402
    assert "body_html" not in locked.get_data(as_text=True)
    again = refund(stripe_client, reader.token, purchase_id)
    assert again.status_code == 200
    assert balance(stripe_client, reader) == 500
    credits = db.session.scalars(
        select(LedgerEntry.amount).where(
            LedgerEntry.kind == ENTRY_REFUND, LedgerEntry.purchase_id == purchase_id
        )
    ).all()
    assert credits == [39]
    # Buying it again is a new purchase at the current price.
    assert bought(stripe_client, reader, article) != purchase_id
    assert balance(stripe_client, reader) == 461
    assert audit() == []


def test_the_refund_window_closes_after_24_hours(
    stripe_client: FlaskClient, localstripe: LocalStripe
) -> None:
    reader = new_reader()
    article = make_article(price=39)
    purchase_id = top_up_and_buy(stripe_client, localstripe.base, reader, article)
    backdate(purchase_id, created_at=utcnow() - timedelta(hours=24, minutes=1))

    response = refund(stripe_client, reader.token, purchase_id)

    assert response.status_code == 409
    assert response.json["error"]["code"] == "refund_window_closed"
    assert balance(stripe_client, reader) == 461
    readable = stripe_client.get(f"/api/v1/articles/{article.slug}", headers=bearer(reader.token))
    assert readable.status_code == 200


def test_a_fourth_reader_refund_in_30_days_is_refused(
    stripe_client: FlaskClient, localstripe: LocalStripe
) -> None:
    reader = new_reader()
    articles = [make_article(price=39) for _ in range(5)]
    top_up(stripe_client, localstripe.base, reader)
    purchases = [bought(stripe_client, reader, a) for a in articles]
    for purchase_id in purchases[:3]:
        assert refund(stripe_client, reader.token, purchase_id).status_code == 200

    fourth = refund(stripe_client, reader.token, purchases[3])

    assert fourth.status_code == 409
    assert fourth.json["error"]["code"] == "refund_limit_reached"
    assert balance(stripe_client, reader) == 500 - 2 * 39
    # Refunds older than 30 days no longer count.
    backdate(purchases[0], refunded_at=utcnow() - timedelta(days=31))
    assert refund(stripe_client, reader.token, purchases[3]).status_code == 200
    assert refund(stripe_client, reader.token, purchases[4]).status_code == 409


def test_only_the_buyer_or_a_publisher_may_refund(
    stripe_client: FlaskClient, localstripe: LocalStripe
) -> None:
    buyer, stranger = new_reader(), new_reader()
    article = make_article(price=39)
    purchase_id = top_up_and_buy(stripe_client, localstripe.base, buyer, article)

    response = refund(stripe_client, stranger.token, purchase_id)

    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"
    assert refund(stripe_client, buyer.token, 999_999_999).status_code == 404
    assert stripe_client.post(f"/api/v1/purchases/{purchase_id}/refund").status_code == 401
    assert balance(stripe_client, buyer) == 461


def test_the_publisher_may_refund_any_purchase(
    stripe_client: FlaskClient, localstripe: LocalStripe
) -> None:
    reader = new_reader()
    article = make_article(price=39)
    purchase_id = top_up_and_buy(stripe_client, localstripe.base, reader, article)
    backdate(purchase_id, created_at=utcnow() - timedelta(days=10))
    publisher_token = make_token(make_user(role="publisher"))

    response = refund(stripe_client, publisher_token, purchase_id)

    assert response.status_code == 200, response.json
    assert response.json["wallet"]["balance"] == {"amount": 500, "currency": "usd"}
    assert balance(stripe_client, reader) == 500
    row = db.session.get(Purchase, purchase_id)
    assert row is not None and (row.status, row.refunded_by) == ("refunded", "publisher")
    locked = stripe_client.get(f"/api/v1/articles/{article.slug}", headers=bearer(reader.token))
    assert locked.status_code == 402


# --- random histories -----------------------------------------------------------------------

_pi_numbers = itertools.count(1)
PRICES = (39, 250)


@dataclass
class Model:
    """What the money should add up to, whatever order the events came in."""

    amounts: list[int]
    pi_ids: list[str]
    references: list[str]  # of the top-ups the app recorded (the PaymentIntents' dispatch_ref)
    credited: set[int] = field(default_factory=set)
    refunded_max: dict[int, int] = field(default_factory=dict)
    dispute_state: dict[int, str] = field(default_factory=dict)  # open / won / lost
    sent: list[dict[str, Any]] = field(default_factory=list)

    def expected_clawback(self, k: int) -> int:
        lost = self.amounts[k] if self.dispute_state.get(k) == "lost" else 0
        return min(self.amounts[k], self.refunded_max.get(k, 0) + lost)

    def open_disputes(self) -> int:
        return sum(1 for state in self.dispute_state.values() if state == "open")


topup_index = st.integers(min_value=0, max_value=2)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("succeeded"), topup_index),
        st.tuples(st.just("card_refund"), topup_index, st.integers(min_value=1, max_value=600)),
        st.tuples(st.just("dispute_created"), topup_index),
        st.tuples(st.just("dispute_closed"), topup_index, st.booleans()),
        st.tuples(st.just("purchase"), st.integers(min_value=0, max_value=len(PRICES) - 1)),
        st.tuples(st.just("refund_purchase"), st.integers(min_value=0, max_value=len(PRICES) - 1)),
        st.tuples(st.just("redeliver"), st.integers(min_value=0, max_value=30), st.booleans()),
    ),
    min_size=6,
    max_size=30,
)


def _apply(
    step: tuple[Any, ...], model: Model, reader: User, publisher: User, articles: list[Article]
) -> None:
    kind = step[0]
    if kind == "purchase":
        _purchase(model, reader, articles[step[1]])
        return
    if kind == "refund_purchase":
        _refund_purchase(reader, publisher, articles[step[1]])
        return
    if kind == "redeliver":
        if not model.sent:
            return
        original = model.sent[step[1] % len(model.sent)]
        again = original if step[2] else {**original, "id": f"{original['id']}_again"}
        outcome = ingest(webhook_events().event(again))
        if step[2]:
            assert outcome == "duplicate"
        return
    k = step[1] % len(model.amounts)
    pi_id, amount = model.pi_ids[k], model.amounts[k]
    charge = charge_obj(pi_id, amount, 0, reader.id, f"ch_{pi_id}")
    intent = payment_intent_obj(
        pi_id, amount, reader.id, reference=model.references[k], latest_charge=f"ch_{pi_id}"
    )
    # What Stripe answers when the webhook asks about the charge's PaymentIntent.
    behind = Behind(intent_from_payload(intent))
    if kind == "succeeded":
        evt = event("payment_intent.succeeded", intent)
    elif kind == "card_refund":
        refunded_total = min(step[2], amount)
        evt = event(
            "charge.refunded",
            {**charge, "amount_refunded": refunded_total, "refunded": refunded_total == amount},
        )
        model.refunded_max[k] = max(model.refunded_max.get(k, 0), refunded_total)
    else:
        created = kind == "dispute_created"
        status = "needs_response" if created else ("won" if step[2] else "lost")
        obj = {**dispute_obj(f"dp_{pi_id}", pi_id, amount, status), "charge": charge}
        evt = event("charge.dispute.created" if created else "charge.dispute.closed", obj)
        previous = model.dispute_state.get(k)
        if created and previous is None:
            model.dispute_state[k] = "open"
        elif not created and previous in (None, "open"):
            model.dispute_state[k] = "won" if step[2] else "lost"
    ingest(webhook_events().event(evt), behind)
    model.credited.add(k)
    model.sent.append(evt)


def _purchase(model: Model, reader: User, article: Article) -> None:
    wallet = find_wallet(reader.id, "usd")
    before, frozen = (wallet.balance, wallet.is_frozen) if wallet else (0, False)
    owned = _active_purchase(reader, article) is not None
    try:
        with db.session.begin_nested():
            result = purchase_article(reader, article)
    except DomainError as exc:
        outcome = exc.code
    else:
        outcome = "created" if result.created else "owned"
    if owned:
        expected = "owned"
    elif frozen:
        expected = "wallet_frozen"
    elif before < article.price_amount:
        expected = "insufficient_funds"
    else:
        expected = "created"
    assert outcome == expected, (before, frozen, article.price_amount)


def _active_purchase(reader: User, article: Article) -> Purchase | None:
    return db.session.scalar(
        select(Purchase).where(
            Purchase.user_id == reader.id,
            Purchase.article_id == article.id,
            Purchase.status == PURCHASE_ACTIVE,
        )
    )


def _refund_purchase(reader: User, publisher: User, article: Article) -> None:
    purchase = _active_purchase(reader, article)
    if purchase is None:
        return
    wallet = find_wallet(reader.id, "usd")
    assert wallet is not None
    before = wallet.balance
    result = refund_purchase(publisher, purchase.id)
    assert result.created
    assert result.wallet.balance == before + purchase.amount


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    amounts=st.lists(st.sampled_from([50, 120, 500]), min_size=1, max_size=3),
    history=steps,
)
def test_random_histories_keep_the_books_balanced(
    client: FlaskClient, amounts: list[int], history: list[tuple[Any, ...]]
) -> None:
    """Top-ups, purchases, refunds, disputes, duplicates, in any order: the books balance."""
    reader, publisher = make_user(), make_user(role="publisher")
    articles = [make_article(price=price) for price in PRICES]
    run = next(_pi_numbers)
    model = Model(
        amounts,
        [f"pi_prop_{run}_{k}" for k in range(len(amounts))],
        [recorded_topup(reader.id, amount) for amount in amounts],
    )

    for step in history:
        _apply(step, model, reader, publisher, articles)

    assert audit() == []
    wallet = find_wallet(reader.id, "usd")
    if not model.credited:
        assert wallet is None or wallet.balance == 0
        return
    assert wallet is not None
    entries_sum = db.session.scalar(
        select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
            LedgerEntry.wallet_id == wallet.id
        )
    )
    stored = db.session.scalar(select(Wallet.balance).where(Wallet.id == wallet.id))
    assert stored == entries_sum == wallet.balance
    spent = db.session.scalar(
        select(func.coalesce(func.sum(Purchase.amount), 0)).where(
            Purchase.user_id == reader.id, Purchase.status == PURCHASE_ACTIVE
        )
    )
    credited = sum(model.amounts[k] for k in model.credited)
    clawed = sum(model.expected_clawback(k) for k in model.credited)
    assert wallet.balance == credited - clawed - spent
    for k in model.credited:
        pi_id = model.pi_ids[k]
        assert entry_amounts(pi_id, ENTRY_TOPUP) == [model.amounts[k]]
        taken = -sum(entry_amounts(pi_id, ENTRY_TOPUP_REFUNDED, ENTRY_DISPUTE))
        assert taken == model.expected_clawback(k) <= model.amounts[k]
    assert wallet.open_disputes == model.open_disputes()
    assert wallet.is_frozen == (model.open_disputes() > 0 or wallet.balance < 0)
