"""Stripe's fee per top-up: taken from what Stripe sends, filled in by `reconcile`,
stored once, and shown in the sales report.

Most tests use a small in-memory gateway (create_app's payment_gateway argument) so that the
fee, and every call made to ask for it, is under the test's control; the last ones run
against localstripe, which reports a balance transaction with fee 0.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from dispatch_pay.cli import fill_fees
from dispatch_pay.payments.gateway import (
    Fee,
    FeeDetail,
    Intent,
    PaymentProviderUnavailable,
    PaymentRequestRejected,
)
from dispatch_pay.payments.stripe_gateway import fee_from_charge, intent_from_payload
from models import TopUp, User, db, utcnow
from tests.support.factories import bearer, make_token, make_user, reader_with_own_id
from tests.support.fake_gateway import InMemoryGateway, app_paying_through
from tests.support.servers import LocalStripe
from tests.support.stripe_helpers import (
    card_payment_method,
    card_top_up,
    event,
    recorded_topup,
    signed,
    topup_metadata,
)
from tests.support.stripe_helpers import stripe_client as stripe_api
from tests.support.web import log_in

STRIPE_FEE = Fee(
    amount=45,
    currency="usd",
    balance_transaction_id="txn_fake_1",
    details=(FeeDetail("stripe_fee", 45, "usd", "Stripe processing fees"),),
)
_ids = itertools.count(1)


@dataclass
class FakeGateway(InMemoryGateway):
    """PaymentGateway in memory: every card succeeds; fees are whatever the test sets."""

    fee_on_create: Fee | None = None  # as if Stripe sent the balance transaction expanded
    fees: dict[str, Fee | None] = field(default_factory=dict)
    fee_errors: dict[str, Exception] = field(default_factory=dict)
    fee_calls: list[str] = field(default_factory=list)

    def create_intent(
        self,
        *,
        amount: int,
        currency: str,
        metadata: dict[str, str],
        payment_method: str | None,
        idempotency_key: str,
        customer: str | None = None,
        off_session: bool = False,
    ) -> Intent:
        n = next(_ids)
        return self.keep_intent(
            f"pi_fake_{n}",
            status="succeeded" if payment_method else "requires_payment_method",
            amount=amount,
            currency=currency,
            metadata=metadata,
            charge_id=f"ch_fake_{n}" if payment_method else None,
            fee=self.fee_on_create if payment_method else None,
        )

    def recent_intents(self, created_after: int) -> list[Intent]:
        # A list from Stripe never has the balance transactions expanded.
        return [replace(i, fee=None) for i in self.intents.values()]

    def charge_fee(self, payment_intent_id: str) -> Fee | None:
        self.fee_calls.append(payment_intent_id)
        if payment_intent_id in self.fee_errors:
            raise self.fee_errors[payment_intent_id]
        return self.fees.get(payment_intent_id)


@dataclass
class Fake:
    app: Flask
    client: FlaskClient
    gateway: FakeGateway


@pytest.fixture()
def fake_app(backend: Any) -> tuple[Flask, FakeGateway]:
    gateway = FakeGateway()
    return app_paying_through(backend, gateway), gateway


@pytest.fixture()
def fake(fake_app: tuple[Flask, FakeGateway], db_connection: Any) -> Iterator[Fake]:
    app, gateway = fake_app
    with app.app_context():
        yield Fake(app, app.test_client(), gateway)


def top_up(fake: Fake, reader: User, amount: int = 500) -> TopUp:
    response = fake.client.post(
        "/api/v1/wallet/topups",
        json={"amount": amount, "currency": "usd", "payment_method": "pm_card_visa"},
        headers=bearer(make_token(reader)),
    )
    assert response.status_code == 201, response.json
    topup = db.session.scalar(
        select(TopUp).where(TopUp.payment_intent_id == response.json["topup"]["id"])
    )
    assert topup is not None and topup.credited_at is not None
    return topup


def reconcile(app: Flask) -> Any:
    result = app.test_cli_runner().invoke(args=["reconcile"])
    assert result.exit_code == 0, result.output
    return result


def fee_of(topup_id: int) -> tuple[int | None, str | None]:
    db.session.expire_all()
    topup = db.session.get(TopUp, topup_id)
    assert topup is not None
    return topup.fee, topup.fee_currency


def sales_api(fake: Fake) -> dict[str, Any]:
    today = utcnow().date().isoformat()
    token = make_token(make_user(role="publisher"))
    response = fake.client.get(
        f"/api/v1/publisher/sales?from={today}&to={today}", headers=bearer(token)
    )
    assert response.status_code == 200, response.json
    topups: dict[str, Any] = response.json["topups"]
    return topups


def charge_event(topup: TopUp, txn: Any, kind: str = "charge.updated") -> dict[str, Any]:
    return event(
        kind,
        {
            "id": topup.charge_id,
            "object": "charge",
            "payment_intent": topup.payment_intent_id,
            "amount": topup.amount,
            "currency": topup.currency,
            "status": "succeeded",
            "paid": True,
            "balance_transaction": txn,
        },
    )


def txn(fee: int, currency: str = "usd") -> dict[str, Any]:
    return {
        "id": f"txn_evt_{fee}",
        "object": "balance_transaction",
        "amount": 500,
        "currency": currency,
        "fee": fee,
        "fee_details": [
            {"amount": fee, "currency": currency, "type": "stripe_fee", "description": None}
        ],
    }


def deliver(fake: Fake, evt: dict[str, Any]) -> str:
    payload, headers = signed(evt)
    response = fake.client.post("/webhooks/stripe", data=payload, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    outcome: str = response.json["outcome"]
    return outcome


# --- Reading the fee out of what Stripe sends -----------------------------------------


def test_the_fee_is_read_from_an_expanded_charge_and_balance_transaction() -> None:
    payload = {
        "id": "pi_1",
        "status": "succeeded",
        "amount": 500,
        "currency": "usd",
        "latest_charge": {"id": "ch_1", "balance_transaction": txn(45, "eur")},
    }
    intent = intent_from_payload(payload)
    assert intent.charge_id == "ch_1"
    assert intent.fee == Fee(45, "eur", "txn_evt_45", (FeeDetail("stripe_fee", 45, "eur"),))


@pytest.mark.parametrize(
    "charge",
    [
        "ch_only_an_id",
        {"id": "ch_1", "balance_transaction": "txn_only_an_id"},
        {"id": "ch_1", "balance_transaction": None},  # not settled yet
        {"id": "ch_1", "balance_transaction": {"fee": 1.5, "currency": "usd"}},
        {"id": "ch_1", "balance_transaction": {"fee": True, "currency": "usd"}},
        {"id": "ch_1", "balance_transaction": {"fee": -3, "currency": "usd"}},
        {"id": "ch_1", "balance_transaction": {"fee": 30, "currency": None}},
        {"id": "ch_1", "balance_transaction": {"fee": 30, "currency": "dollars"}},
    ],
)
def test_no_fee_unless_stripe_sent_a_well_formed_one(charge: Any) -> None:
    assert fee_from_charge(charge) is None
    assert intent_from_payload({"id": "pi_1", "latest_charge": charge}).fee is None


# --- The hot paths ask Stripe nothing more ------------------------------------------------


def test_a_fee_stripe_sent_with_the_confirmation_is_stored_without_another_call(
    fake: Fake,
) -> None:
    fake.gateway.fee_on_create = STRIPE_FEE
    topup = top_up(fake, make_user())

    assert fee_of(topup.id) == (45, "usd")
    assert topup.fee_details == [
        {
            "type": "stripe_fee",
            "amount": 45,
            "currency": "usd",
            "description": "Stripe processing fees",
        }
    ]
    assert topup.fee_recorded_at is not None
    assert fake.gateway.fee_calls == []
    assert "fee of" not in reconcile(fake.app).output
    assert fake.gateway.fee_calls == []  # known fees are never asked for again


def test_reconcile_fills_an_unknown_fee_and_the_sales_report_shows_it(fake: Fake) -> None:
    topup = top_up(fake, make_user())
    assert fee_of(topup.id) == (None, None)
    assert fake.gateway.fee_calls == []  # the top-up request did not ask for it
    assert sales_api(fake)["stripe_fees_unknown"] == 1

    fake.gateway.fees[str(topup.payment_intent_id)] = STRIPE_FEE
    result = reconcile(fake.app)

    assert f"fee of top-up {topup.id}: $0.45" in result.output
    assert "reconcile: 1 Stripe fee(s) recorded." in result.output
    assert fake.gateway.fee_calls == [topup.payment_intent_id]
    assert fee_of(topup.id) == (45, "usd")
    figures = sales_api(fake)
    assert figures["stripe_fees"] == [{"amount": 45, "currency": "usd"}]
    assert figures["stripe_fees_unknown"] == 0
    log_in(fake.client, make_user(role="publisher"))
    page = fake.client.get("/publisher/sales").get_data(as_text=True).split('id="topups"')[1]
    assert "$0.45" in page and "unknown for" not in page

    reconcile(fake.app)
    assert fake.gateway.fee_calls == [topup.payment_intent_id]  # not asked twice


def test_a_fee_still_unknown_at_stripe_stays_unknown_and_is_asked_again(fake: Fake) -> None:
    topup = top_up(fake, make_user())

    assert "reconcile: 0 Stripe fee(s) recorded." in reconcile(fake.app).output
    assert fee_of(topup.id) == (None, None)
    fake.gateway.fees[str(topup.payment_intent_id)] = STRIPE_FEE
    reconcile(fake.app)
    assert fee_of(topup.id) == (45, "usd")
    assert fake.gateway.fee_calls == [topup.payment_intent_id] * 2


def test_stripe_failing_on_fees_neither_fails_reconcile_nor_loses_other_fees(
    fake: Fake,
) -> None:
    reader = make_user()
    refused, down, fine = top_up(fake, reader), top_up(fake, reader), top_up(fake, reader)
    fake.gateway.fee_errors[str(refused.payment_intent_id)] = PaymentRequestRejected("404")
    fake.gateway.fees[str(fine.payment_intent_id)] = STRIPE_FEE
    # Newest first: `fine`, then `down` (Stripe unavailable stops the batch), `refused`.
    fake.gateway.fee_errors[str(down.payment_intent_id)] = PaymentProviderUnavailable("503")

    result = reconcile(fake.app)

    assert "fees: Stripe unavailable" in result.output
    assert [fee_of(t.id)[0] for t in (refused, down, fine)] == [None, None, 45]
    assert fake.gateway.fee_calls == [fine.payment_intent_id, down.payment_intent_id]

    del fake.gateway.fee_errors[str(down.payment_intent_id)]
    reconcile(fake.app)  # the refused one is skipped, the run still succeeds
    assert fake.gateway.fee_calls[2:] == [down.payment_intent_id, refused.payment_intent_id]


def test_reconcile_asks_for_a_bounded_batch_of_recent_top_ups(fake: Fake) -> None:
    reader = make_user()
    topups = [top_up(fake, reader) for _ in range(4)]
    old = topups[0]
    old.credited_at = utcnow() - timedelta(days=10)
    db.session.commit()
    for topup in topups:
        fake.gateway.fees[str(topup.payment_intent_id)] = STRIPE_FEE

    lines = fill_fees(fake.gateway, since_days=3, limit=2)

    assert len(lines) == 2
    newest_first = [t.payment_intent_id for t in reversed(topups)]
    assert fake.gateway.fee_calls == newest_first[:2]
    fill_fees(fake.gateway, since_days=3, limit=2)
    assert fake.gateway.fee_calls == newest_first[:3]  # the ten-day-old one is never asked
    assert fee_of(old.id) == (None, None)


# --- Stored once ----------------------------------------------------------------------


def test_a_charge_event_with_the_balance_transaction_records_the_fee_once(
    fake: Fake,
) -> None:
    topup = top_up(fake, make_user())

    assert deliver(fake, charge_event(topup, "txn_as_an_id")) == "no_fee"
    assert deliver(fake, charge_event(topup, txn(30), "charge.succeeded")) == "fee_recorded"
    assert fee_of(topup.id) == (30, "usd")
    assert deliver(fake, charge_event(topup, txn(99))) == "fee_already_known"
    assert fee_of(topup.id) == (30, "usd")  # never overwritten with a different value
    fake.gateway.fees[str(topup.payment_intent_id)] = STRIPE_FEE
    reconcile(fake.app)
    assert fee_of(topup.id) == (30, "usd")
    assert fake.gateway.fee_calls == []  # webhooks never ask Stripe; reconcile had no need


def test_a_charge_event_for_a_charge_not_ours_changes_nothing(fake: Fake) -> None:
    topup = top_up(fake, make_user())
    stranger = charge_event(topup, txn(30))
    stranger["data"]["object"].update(id="ch_someone_else", payment_intent="pi_someone_else")

    assert deliver(fake, stranger) == "ignored"
    assert fee_of(topup.id) == (None, None)


def test_a_fee_in_a_currency_we_do_not_sell_in_stays_unknown(fake: Fake) -> None:
    topup = top_up(fake, make_user())

    assert deliver(fake, charge_event(topup, txn(4000, "jpy"))) == "fee_not_recorded"
    assert fee_of(topup.id) == (None, None)
    assert sales_api(fake)["stripe_fees_unknown"] == 1


def test_fees_are_summed_in_the_currency_stripe_charged_them_in(fake: Fake) -> None:
    reader = make_user()
    usd_fee, eur_fee = top_up(fake, reader), top_up(fake, reader)
    top_up(fake, reader)  # its fee stays unknown
    deliver(fake, charge_event(usd_fee, txn(45)))
    deliver(fake, charge_event(eur_fee, txn(40, "eur")))  # settled in euros

    figures = sales_api(fake)

    assert figures["received"] == [{"amount": 1500, "currency": "usd"}]
    assert sorted(figures["stripe_fees"], key=lambda m: m["currency"]) == [
        {"amount": 40, "currency": "eur"},
        {"amount": 45, "currency": "usd"},
    ]
    assert figures["stripe_fees_unknown"] == 1


# --- Against localstripe ----------------------------------------------------------------

# localstripe outlives each test and `reconcile` sees every PaymentIntent in it: readers
# get ids no other test uses, so that none is credited another test's top-ups.
_reader_ids = itertools.count(9_600_000)


def reader_in_own_range() -> User:
    user = reader_with_own_id(_reader_ids)
    return user


def test_localstripe_reports_its_fee_with_the_confirmation(
    stripe_client: FlaskClient, localstripe: LocalStripe
) -> None:
    response = card_top_up(stripe_client, localstripe.base, make_token(reader_in_own_range()))
    topup = db.session.scalar(
        select(TopUp).where(TopUp.payment_intent_id == response.json["topup"]["id"])
    )
    assert topup is not None
    # localstripe implements balance transactions, with no fee: 0, in the charge's currency.
    assert fee_of(topup.id) == (0, "usd")


def test_reconcile_against_localstripe_records_what_it_can_and_never_fails(
    stripe_app: Flask, stripe_client: FlaskClient, localstripe: LocalStripe
) -> None:
    reader = reader_in_own_range()
    # Credited from a webhook for a PaymentIntent localstripe does not know: no fee exists.
    unknown = event(
        "payment_intent.succeeded",
        {
            "id": f"pi_unknown_to_localstripe_{reader.id}",
            "object": "payment_intent",
            "status": "succeeded",
            "amount": 300,
            "currency": "usd",
            "latest_charge": f"ch_unknown_{reader.id}",
            "metadata": topup_metadata(reader.id, recorded_topup(reader.id, 300)),
        },
    )
    payload, headers = signed(unknown)
    response = stripe_client.post("/webhooks/stripe", data=payload, headers=headers)
    assert response.json["outcome"] == "credited"

    # Paid in Stripe directly, no webhook: reconcile credits it, then asks for its fee.
    paid = stripe_api(localstripe.base).v1.payment_intents.create(
        params={
            "amount": 700,
            "currency": "usd",
            "payment_method_types": ["card"],
            "payment_method": card_payment_method(localstripe.base),
            "confirm": True,
            "metadata": topup_metadata(reader.id, recorded_topup(reader.id, 700)),
        }
    )

    result = stripe_app.test_cli_runner().invoke(args=["reconcile"])

    assert result.exit_code == 0, result.output
    assert f"credited {paid.id}" in result.output
    credited = db.session.scalar(select(TopUp).where(TopUp.payment_intent_id == paid.id))
    assert credited is not None
    assert f"fee of top-up {credited.id}: $0.00" in result.output
    assert fee_of(credited.id) == (0, "usd")
    topup = db.session.scalar(
        select(TopUp).where(TopUp.payment_intent_id == f"pi_unknown_to_localstripe_{reader.id}")
    )
    assert topup is not None and topup.credited_at is not None
    assert fee_of(topup.id) == (None, None)
    today = utcnow().date().isoformat()
    token = make_token(make_user(role="publisher"))
    figures = stripe_client.get(
        f"/api/v1/publisher/sales?from={today}&to={today}", headers=bearer(token)
    ).json["topups"]
    assert figures["stripe_fees_unknown"] == 1
    assert figures["stripe_fees"] == [{"amount": 0, "currency": "usd"}]
