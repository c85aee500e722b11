"""`audit` notices each money fault of issue 11 when it is planted in the database
directly, as a bug (or a hand edit) would leave it: one test per kind of fault.

Rows are written straight through the models, bypassing every service, so these tests
do not depend on how the app avoids the faults, only on what the books look like.
"""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

from flask.testing import FlaskClient

from dispatch_pay.wallet.audit import audit
from models import (
    ENTRY_DISPUTE,
    ENTRY_PURCHASE,
    ENTRY_REFUND,
    ENTRY_TOPUP,
    Dispute,
    LedgerEntry,
    Purchase,
    TopUp,
    User,
    Wallet,
    WebhookEvent,
    db,
    utcnow,
)
from tests.support.factories import make_article, make_user

_seq = itertools.count(1)


def wallet_of(user: User, currency: str = "usd") -> Wallet:
    wallet = Wallet(user_id=user.id, currency=currency, balance=0, open_disputes=0)
    db.session.add(wallet)
    db.session.flush()
    return wallet


def entry(wallet: Wallet, kind: str, amount: int, reference: str, **rest: Any) -> LedgerEntry:
    row = LedgerEntry(wallet_id=wallet.id, kind=kind, amount=amount, reference=reference, **rest)
    db.session.add(row)
    wallet.balance += amount
    db.session.flush()
    return row


def credited_top_up(
    user: User, wallet: Wallet, amount: int = 500, *, status: str = "succeeded"
) -> TopUp:
    """A top-up of `user` credited (`amount`) into `wallet`, which may be someone else's."""
    n = next(_seq)
    pi_id = f"pi_planted_{n}"
    topup = TopUp(
        user_id=user.id,
        amount=amount,
        currency=wallet.currency,
        status=status,
        payment_intent_id=pi_id,
        reference=f"{n:032x}",
        charge_id=f"ch_planted_{n}",
        credited_at=utcnow(),
    )
    db.session.add(topup)
    entry(wallet, ENTRY_TOPUP, amount, pi_id, payment_intent_id=pi_id)
    return topup


def closed_dispute(wallet: Wallet, topup: TopUp, dispute_id: str, outcome: str) -> None:
    """A dispute of the whole top-up, closed with `outcome`, as the dispute handler records it."""
    db.session.add(
        Dispute(
            stripe_dispute_id=dispute_id,
            wallet_id=wallet.id,
            payment_intent_id=str(topup.payment_intent_id),
            charge_id=topup.charge_id,
            amount=500,
            status="closed",
            outcome=outcome,
            closed_at=utcnow(),
        )
    )


def stored_event(event_type: str, obj: dict[str, Any], outcome: str = "ignored") -> None:
    n = next(_seq)
    db.session.add(
        WebhookEvent(
            stripe_event_id=f"evt_planted_{n}",
            type=event_type,
            livemode=False,
            outcome=outcome,
            payload={"id": f"evt_planted_{n}", "type": event_type, "data": {"object": obj}},
        )
    )
    db.session.flush()


def assert_reported(*words: str) -> None:
    problems = audit()
    assert problems, "audit found nothing"
    text = "\n".join(problems).lower()
    for word in words:
        assert word.lower() in text, problems


def test_books_with_a_plain_credited_top_up_balance(client: FlaskClient) -> None:
    reader = make_user()
    credited_top_up(reader, wallet_of(reader))
    assert audit() == []


def test_a_credit_in_another_readers_wallet(client: FlaskClient) -> None:
    made_it, got_it = make_user(), make_user()
    topup = credited_top_up(made_it, wallet_of(got_it))
    assert_reported(str(topup.payment_intent_id), "reader")


def test_a_negative_top_up_credited(client: FlaskClient) -> None:
    reader = make_user()
    topup = credited_top_up(reader, wallet_of(reader), amount=-500)
    assert_reported(str(topup.payment_intent_id))


def test_a_top_up_above_the_limit_credited(client: FlaskClient) -> None:
    reader = make_user()
    topup = credited_top_up(reader, wallet_of(reader), amount=2**31 - 1)
    assert_reported(str(topup.payment_intent_id))


def test_a_succeeded_top_up_of_zero_never_credited(client: FlaskClient) -> None:
    reader = make_user()
    db.session.add(
        TopUp(
            user_id=reader.id,
            amount=0,
            currency="usd",
            status="succeeded",
            payment_intent_id="pi_planted_zero",
            reference="0" * 32,
        )
    )
    db.session.flush()
    assert_reported("pi_planted_zero")


def test_a_processing_top_up_credited(client: FlaskClient) -> None:
    reader = make_user()
    topup = credited_top_up(reader, wallet_of(reader), status="processing")
    assert_reported(str(topup.payment_intent_id))


def test_a_refund_recorded_but_the_wallet_kept_the_money(client: FlaskClient) -> None:
    """Stripe told us the charge was refunded (the event is stored) but no card refund was
    taken from the wallet: the refund was lost (issue 11, item 2)."""
    reader = make_user()
    topup = credited_top_up(reader, wallet_of(reader))
    charge = {
        "id": topup.charge_id,
        "object": "charge",
        "amount": 500,
        "amount_refunded": 500,
        "currency": "usd",
        "payment_intent": topup.payment_intent_id,
        "refunded": True,
        "metadata": {},
    }
    stored_event("charge.refunded", charge, outcome="ignored")
    assert_reported(str(topup.payment_intent_id), "refund")


def test_a_dispute_recorded_but_never_applied(client: FlaskClient) -> None:
    reader = make_user()
    topup = credited_top_up(reader, wallet_of(reader))
    dispute = {
        "id": "dp_planted_unapplied",
        "object": "dispute",
        "amount": 500,
        "currency": "usd",
        "status": "needs_response",
        "charge": topup.charge_id,
        "payment_intent": topup.payment_intent_id,
    }
    stored_event("charge.dispute.created", dispute, outcome="ignored")
    assert_reported(str(topup.payment_intent_id), "dispute")


def test_a_lost_dispute_never_debited(client: FlaskClient) -> None:
    reader = make_user()
    wallet = wallet_of(reader)
    topup = credited_top_up(reader, wallet)
    assert topup.payment_intent_id is not None
    closed_dispute(wallet, topup, "dp_planted_lost", "lost")
    db.session.flush()
    assert_reported("dp_planted_lost")


def test_a_won_dispute_debited(client: FlaskClient) -> None:
    """`warning_closed` and `won` disputes are not lost: the reader keeps the money."""
    reader = make_user()
    wallet = wallet_of(reader)
    topup = credited_top_up(reader, wallet)
    assert topup.payment_intent_id is not None
    closed_dispute(wallet, topup, "dp_planted_won", "won")
    entry(
        wallet,
        ENTRY_DISPUTE,
        -500,
        "dp_planted_won",
        payment_intent_id=topup.payment_intent_id,
    )
    assert_reported("dp_planted_won")


def test_more_reader_refunds_than_the_limit(client: FlaskClient) -> None:
    """Four refunds by the reader within 30 days (issue 11, item 10: the limit is 3)."""
    reader = make_user()
    wallet = wallet_of(reader)
    credited_top_up(reader, wallet, amount=1000)
    for _ in range(4):
        article = make_article(price=39)
        purchase = Purchase(
            user_id=reader.id,
            article_id=article.id,
            wallet_id=wallet.id,
            amount=39,
            currency="usd",
            status="refunded",
            refunded_at=utcnow() - timedelta(days=1),
            refunded_by="reader",
        )
        db.session.add(purchase)
        db.session.flush()
        entry(wallet, ENTRY_PURCHASE, -39, f"purchase:{purchase.id}", purchase_id=purchase.id)
        entry(wallet, ENTRY_REFUND, 39, f"purchase:{purchase.id}", purchase_id=purchase.id)
    assert_reported(f"reader {reader.id}", "refund")
