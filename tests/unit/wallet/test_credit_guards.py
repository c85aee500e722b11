"""Each guard of crediting, one example each (issue 11, "Tests that would have caught
these"): hand-made mutations of these branches passed the whole suite before.

Only a `succeeded` PaymentIntent is credited (not `processing`, not `requires_capture`);
never one whose charge is disputed or (for the refunded part) refunded; a `won` or
`warning_closed` dispute is not lost, only `lost` debits. Stripe is an in-memory gateway
here, so that any PaymentIntent state can be set up.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from dispatch_pay.payments.gateway import Intent
from dispatch_pay.wallet.audit import audit
from models import TopUp, User, db
from tests.support.factories import bearer, make_article, make_token, make_user
from tests.support.fake_gateway import InMemoryGateway, app_paying_through
from tests.support.stripe_helpers import dispute_obj, event, signed

_ids = itertools.count(1)


@dataclass(eq=False)
class PendingGateway(InMemoryGateway):
    """Every top-up waits for the reader's bank (3-D Secure) until a test moves it on."""

    def create_intent(
        self,
        *,
        amount: int,
        currency: str,
        metadata: dict[str, str],
        payment_method: str | None,
        idempotency_key: str,
        **_rest: Any,
    ) -> Intent:
        n = next(_ids)
        return self.keep_intent(
            f"pi_guard_{n}",
            status="requires_action",
            amount=amount,
            currency=currency,
            metadata=metadata,
            charge_id=f"ch_guard_{n}",
            created=2_000_000_000,
        )

    def move(self, pi_id: str, **changes: Any) -> Intent:
        self.intents[pi_id] = replace(self.intents[pi_id], **changes)
        return self.intents[pi_id]


@dataclass
class Guarded:
    app: Flask
    client: FlaskClient
    gateway: PendingGateway
    reader: User
    token: str

    def top_up(self, amount: int = 500) -> str:
        response = self.client.post(
            "/api/v1/wallet/topups",
            json={"amount": amount, "currency": "usd", "payment_method": "pm_card_visa"},
            headers=bearer(self.token),
        )
        assert response.status_code == 201, response.json
        return str(response.json["topup"]["id"])

    def balance(self) -> int:
        wallet = self.client.get("/api/v1/wallet", headers=bearer(self.token)).json
        return int(wallet["balance"]["amount"])

    def status(self) -> str:
        wallet = self.client.get("/api/v1/wallet", headers=bearer(self.token)).json
        return str(wallet["status"])

    def reconcile(self) -> str:
        result = self.app.test_cli_runner().invoke(args=["reconcile"])
        assert result.exit_code == 0, result.output
        return str(result.output)

    def deliver(self, evt: dict[str, Any]) -> Any:
        payload, headers = signed(evt)
        response = self.client.post("/webhooks/stripe", data=payload, headers=headers)
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.json


@pytest.fixture()
def guarded_app(backend: Any) -> tuple[Flask, PendingGateway]:
    gateway = PendingGateway()
    return app_paying_through(backend, gateway), gateway


@pytest.fixture()
def guarded(guarded_app: tuple[Flask, PendingGateway], db_connection: Any) -> Iterator[Guarded]:
    app, gateway = guarded_app
    with app.app_context():
        reader = make_user()
        yield Guarded(app, app.test_client(), gateway, reader, make_token(reader))


@pytest.mark.parametrize("status", ["processing", "requires_capture", "requires_action"])
def test_reconcile_credits_only_succeeded_intents(guarded: Guarded, status: str) -> None:
    pi_id = guarded.top_up()
    guarded.gateway.move(pi_id, status=status)
    guarded.reconcile()
    assert guarded.balance() == 0
    assert audit() == []


@pytest.mark.parametrize("status", ["processing", "requires_capture"])
def test_a_poll_credits_only_succeeded_intents(guarded: Guarded, status: str) -> None:
    pi_id = guarded.top_up()
    guarded.gateway.move(pi_id, status=status)
    polled = guarded.client.get(f"/api/v1/wallet/topups/{pi_id}", headers=bearer(guarded.token))
    assert polled.status_code == 200
    assert polled.json["topup"]["status"] == status
    assert guarded.balance() == 0


def test_reconcile_credits_a_succeeded_intent(guarded: Guarded) -> None:
    pi_id = guarded.top_up()
    guarded.gateway.move(pi_id, status="succeeded")
    guarded.reconcile()
    assert guarded.balance() == 500
    assert audit() == []


def test_reconcile_does_not_credit_a_disputed_charge(guarded: Guarded) -> None:
    pi_id = guarded.top_up()
    guarded.gateway.move(pi_id, status="succeeded", disputed=True)
    guarded.reconcile()
    assert guarded.balance() == 0
    assert audit() == []


def test_reconcile_credits_only_what_was_not_refunded(guarded: Guarded) -> None:
    pi_id = guarded.top_up(800)
    guarded.gateway.move(pi_id, status="succeeded", amount_refunded=300)
    guarded.reconcile()
    assert guarded.balance() == 500
    guarded.reconcile()
    assert guarded.balance() == 500
    assert audit() == []


def test_a_disputed_top_up_won_afterwards_is_credited_then(guarded: Guarded) -> None:
    pi_id = guarded.top_up()
    intent = guarded.gateway.move(pi_id, status="succeeded", disputed=True)
    guarded.reconcile()
    dispute = dispute_obj(f"dp_{pi_id}", pi_id, 500, "needs_response", intent.charge_id)
    guarded.deliver(event("charge.dispute.created", dispute))
    assert guarded.status() == "frozen"
    guarded.deliver(event("charge.dispute.closed", {**dispute, "status": "won"}))
    assert guarded.status() == "active"
    assert guarded.balance() == 500
    assert audit() == []


def test_a_disputed_top_up_lost_afterwards_is_never_credited(guarded: Guarded) -> None:
    """mutmut (webhooks/services.py `_dispute_closed`): crediting the held top-up whatever
    the dispute's outcome (`and` -> `or`) survived; a lost dispute's money stays taken."""
    pi_id = guarded.top_up()
    intent = guarded.gateway.move(pi_id, status="succeeded", disputed=True)
    guarded.reconcile()
    dispute = dispute_obj(f"dp_{pi_id}", pi_id, 500, "needs_response", intent.charge_id)
    guarded.deliver(event("charge.dispute.created", dispute))
    assert guarded.status() == "frozen"
    guarded.deliver(event("charge.dispute.closed", {**dispute, "status": "lost"}))
    assert guarded.status() == "active"
    assert guarded.balance() == 0
    assert audit() == []


@pytest.mark.parametrize(("outcome", "kept"), [("won", 500), ("warning_closed", 500), ("lost", 0)])
def test_only_a_lost_dispute_takes_the_money_back(
    guarded: Guarded, outcome: str, kept: int
) -> None:
    pi_id = guarded.top_up()
    intent = guarded.gateway.move(pi_id, status="succeeded")
    guarded.reconcile()
    assert guarded.balance() == 500
    dispute = dispute_obj(f"dp_{pi_id}", pi_id, 500, "needs_response", intent.charge_id)
    guarded.deliver(event("charge.dispute.created", dispute))
    assert guarded.status() == "frozen"

    guarded.deliver(event("charge.dispute.closed", {**dispute, "status": outcome}))

    assert guarded.balance() == kept
    assert guarded.status() == "active"
    assert audit() == []


def test_an_early_warning_that_closes_is_not_lost(guarded: Guarded) -> None:
    """Visa's early fraud warnings close as `warning_closed` without any created event."""
    pi_id = guarded.top_up()
    intent = guarded.gateway.move(pi_id, status="succeeded")
    guarded.reconcile()
    dispute = dispute_obj(f"dp_{pi_id}", pi_id, 500, "warning_closed", intent.charge_id)
    guarded.deliver(event("charge.dispute.closed", dispute))
    assert guarded.balance() == 500
    assert audit() == []


# --- found by `make mutate` (docs/mutants.md): each test fails against a surviving mutant ---


def test_reconcile_reports_a_refused_intent_and_goes_on_to_credit_the_next(
    guarded: Guarded,
) -> None:
    refused = guarded.top_up()
    guarded.gateway.move(refused, status="succeeded", amount=900)  # not the top-up's amount
    credited = guarded.top_up(700)
    guarded.gateway.move(credited, status="succeeded")

    report = guarded.reconcile()

    assert f"not credited {refused}: " in report
    assert f"credited {credited}: $7.00 to reader {guarded.reader.id}" in report
    assert guarded.balance() == 700


def top_up_to_buy(guarded: Guarded, slug: str) -> str:
    response = guarded.client.post(
        "/api/v1/wallet/topups",
        json={"amount": 500, "currency": "usd", "payment_method": "pm_card_visa", "buy": slug},
        headers=bearer(guarded.token),
    )
    assert response.status_code == 201, response.json
    return str(response.json["topup"]["id"])


def owned_slugs(guarded: Guarded) -> list[str]:
    library = guarded.client.get("/api/v1/library", headers=bearer(guarded.token)).json
    return [item["article"]["slug"] for item in library["articles"]]


@pytest.mark.parametrize("recorded", ["on_the_top_up", "only_on_the_payment_intent"])
def test_the_article_a_top_up_was_made_for_is_bought_once_credited(
    guarded: Guarded, recorded: str
) -> None:
    """The top-up names the article; a top-up recorded without it (before the column) is
    bought from the PaymentIntent's `dispatch_article`: that article and no other."""
    make_article(price=39)  # another article, never bought
    wanted = make_article(price=39)
    pi_id = top_up_to_buy(guarded, wanted.slug)
    if recorded == "only_on_the_payment_intent":
        db.session.execute(
            update(TopUp).where(TopUp.payment_intent_id == pi_id).values(buy_article_id=None)
        )
        db.session.commit()
    guarded.gateway.move(pi_id, status="succeeded")

    guarded.reconcile()

    assert owned_slugs(guarded) == [wanted.slug]
    assert guarded.balance() == 461
    assert audit() == []


def test_reconcile_says_credited_once_and_keeps_the_charge(guarded: Guarded) -> None:
    pi_id = guarded.top_up()
    intent = guarded.gateway.move(pi_id, status="succeeded")

    first, again = guarded.reconcile(), guarded.reconcile()

    assert f"credited {pi_id}: " in first
    assert pi_id not in again
    charge = db.session.scalar(select(TopUp.charge_id).where(TopUp.payment_intent_id == pi_id))
    assert charge == intent.charge_id is not None


def test_reconcile_does_not_say_a_disputed_charge_was_credited(guarded: Guarded) -> None:
    pi_id = guarded.top_up()
    guarded.gateway.move(pi_id, status="succeeded", disputed=True)
    assert pi_id not in guarded.reconcile()


def test_a_refund_of_one_cent_is_taken_back_too(guarded: Guarded) -> None:
    pi_id = guarded.top_up()
    guarded.gateway.move(pi_id, status="succeeded", amount_refunded=1)
    guarded.reconcile()
    assert guarded.balance() == 499
