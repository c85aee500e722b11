"""Property test of auto top-up: a stateful machine of purchases that charge a saved card
off-session (succeeding, declined, needing the reader, Stripe down), daily caps, monthly
limits, gift links, refunds, duplicate webhooks and `reconcile`.

After every step the books balance (`audit()`), the wallet holds what a simple model
says, every auto top-up is credited once or never, and the month's auto top-ups stay
within the limit. Stripe is a fake gateway chosen by configuration; events arrive
through the signed webhook endpoint.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import Engine, func, select

from dispatch_pay import create_app
from dispatch_pay.payments.gateway import CardDeclined, Intent, PaymentProviderUnavailable
from dispatch_pay.wallet.audit import audit
from models import ENTRY_TOPUP, LedgerEntry, TopUp, Wallet, db
from tests.conftest import test_config as app_config
from tests.support.factories import bearer, make_article, make_token, make_user
from tests.support.fake_gateway import InMemoryGateway
from tests.support.stripe_helpers import WEBHOOK_SECRET, event, signed

PRICES = (39, 120, 450, 700)
OUTCOMES = ("ok", "ok", "declined", "needs_reader", "needs_reader_localstripe", "unavailable")
_run = itertools.count(1)


class OffSessionStripe(InMemoryGateway):
    """Charges the saved card as `mode` says: ok, declined, needs_reader (Stripe's
    CardError `authentication_required`), needs_reader_localstripe (a PaymentIntent
    left in `requires_action`, as localstripe answers) or unavailable (refused at once)."""

    def __init__(self, run: int) -> None:
        super().__init__()
        self.run = run
        self.mode = "ok"
        self._numbers = itertools.count(1)

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
        assert off_session and customer and payment_method, "only auto top-ups here"
        if self.mode == "unavailable":
            raise PaymentProviderUnavailable("too many Stripe calls in flight")
        status = {"ok": "succeeded", "needs_reader_localstripe": "requires_action"}.get(
            self.mode, "requires_payment_method"
        )
        pi_id = f"pi_auto_{self.run}_{next(self._numbers)}"
        intent = self.keep_intent(
            pi_id,
            status=status,
            amount=amount,
            currency=currency,
            metadata=metadata,
            charge_id=f"ch_{pi_id}" if status == "succeeded" else None,
            created=int(time.time()),
        )
        if self.mode == "declined":
            raise CardDeclined("card_declined", "Your card was declined.", pi_id)
        if self.mode == "needs_reader":
            raise CardDeclined("authentication_required", "Authentication required.", pi_id)
        return intent


@dataclass
class Model:
    auto: tuple[int, int, int] | None = None  # below, amount, monthly limit
    active: bool = True
    card: bool = False
    cap: int | None = None
    owned: dict[int, int] = field(default_factory=dict)  # article -> price paid
    credited: dict[str, int] = field(default_factory=dict)  # PaymentIntent -> amount
    charged_this_month: int = 0
    highest_limit: int = 0


class AutoTopUpMachine(RuleBasedStateMachine):
    client: FlaskClient
    app: Flask
    connection: Any

    def __init__(self) -> None:
        super().__init__()
        db.session.remove()
        self.savepoint = self.connection.begin_nested()
        self.stripe = OffSessionStripe(next(_run))
        self.app.extensions["payment_gateway"] = self.stripe
        self.publisher_token = make_token(make_user(role="publisher"))
        reader = make_user()
        self.reader_id = reader.id
        self.token = make_token(reader)
        self.articles = [make_article(price=price).slug for price in PRICES]
        self.model = Model()
        # Histories start with a saved card and auto top-up on (rules switch them off):
        # otherwise almost no purchase would ever reach the card.
        self.save_card()
        self.set_auto_topup(0, 500, 2000)

    def teardown(self) -> None:
        db.session.remove()
        if self.savepoint.is_active:
            self.savepoint.rollback()

    # --- the model ---

    def balance(self) -> int:
        return sum(self.model.credited.values()) - sum(self.model.owned.values())

    def auto_charge(self, price: int) -> int | None:
        """What auto top-up would charge for this purchase; None when it would not try."""
        m = self.model
        if m.auto is None or not m.active or not m.card:
            return None
        below, amount, _limit = m.auto
        return max(amount, price - self.balance() + below)

    # --- rules: the reader's settings ---

    @rule(
        below=st.sampled_from([0, 50, 200]),
        amount=st.sampled_from([50, 300, 500]),
        limit=st.sampled_from([500, 1000, 2000]),
    )
    def set_auto_topup(self, below: int, amount: int, limit: int) -> None:
        body = {
            "auto_topup": {
                "below": {"amount": below, "currency": "usd"},
                "amount": {"amount": amount, "currency": "usd"},
                "monthly_limit": {"amount": limit, "currency": "usd"},
            }
        }
        response = self.client.put("/api/v1/wallet/settings", json=body, headers=self.auth)
        if below > limit or amount > limit:
            assert response.status_code == 422, response.json
            return
        assert response.status_code == 200, response.json
        self.model.auto = (below, amount, limit)
        self.model.active = True
        self.model.highest_limit = max(self.model.highest_limit, limit)

    @rule()
    def switch_auto_topup_off(self) -> None:
        response = self.client.put(
            "/api/v1/wallet/settings", json={"auto_topup": None}, headers=self.auth
        )
        assert response.status_code == 200 and response.json["auto_topup"] is None
        self.model.auto = None

    @rule(cap=st.sampled_from([None, 100, 500, 1500]))
    def set_daily_cap(self, cap: int | None) -> None:
        value = None if cap is None else {"amount": cap, "currency": "usd"}
        response = self.client.put(
            "/api/v1/wallet/settings", json={"daily_cap": value}, headers=self.auth
        )
        assert response.status_code == 200, response.json
        self.model.cap = cap

    @rule()
    def save_card(self) -> None:
        response = self.client.put(
            "/api/v1/wallet/card", json={"payment_method": "pm_saved"}, headers=self.auth
        )
        assert response.status_code == 200, response.json
        self.model.card = True

    @rule()
    def remove_card(self) -> None:
        response = self.client.delete("/api/v1/wallet/card", headers=self.auth)
        assert response.status_code == 200 and response.json == {"card": None}
        self.model.card = False

    # --- rules: buying, gifts, refunds ---

    @rule(a=st.integers(0, len(PRICES) - 1), outcome=st.sampled_from(OUTCOMES))
    def purchase(self, a: int, outcome: str) -> None:
        m, price = self.model, PRICES[a]
        before = set(self.stripe.intents)
        self.stripe.mode = outcome
        try:
            response = self.client.post(
                f"/api/v1/articles/{self.articles[a]}/purchase", headers=self.auth
            )
        finally:
            self.stripe.mode = "ok"
        made = [self.stripe.intents[p] for p in self.stripe.intents if p not in before]
        body = response.json
        if a in m.owned:
            assert response.status_code == 200, body
            assert made == []
            return
        if m.cap is not None and sum(m.owned.values()) + price > m.cap:
            assert (response.status_code, body["error"]["code"]) == (402, "spending_cap_reached")
            assert made == []
            return
        if self.balance() >= price:
            assert response.status_code == 201, body
            assert made == []
            m.owned[a] = price
            return
        charge = self.auto_charge(price)
        assert m.auto is not None or charge is None
        if charge is None or m.charged_this_month + charge > m.auto[2]:  # type: ignore[index]
            assert (response.status_code, body["error"]["code"]) == (402, "insufficient_funds")
            assert made == []
            if charge is not None:
                assert body["auto_topup"]["status"] == "monthly_limit_reached"
            return
        if outcome == "unavailable":
            assert response.status_code == 503, body
            return
        (intent,) = made
        assert intent.amount == charge
        if outcome == "ok":
            assert response.status_code == 201, body
            m.credited[intent.id] = charge
            m.charged_this_month += charge
            m.owned[a] = price
            return
        assert (response.status_code, body["error"]["code"]) == (402, "insufficient_funds")
        if outcome == "declined":
            assert body["auto_topup"]["status"] == "card_declined"
            m.active = False
        else:
            assert body["auto_topup"]["status"] == "requires_action"

    # Buying is what this machine is about: three rules (Hypothesis picks rules evenly).
    @rule(a=st.integers(0, len(PRICES) - 1), outcome=st.sampled_from(OUTCOMES))
    def purchase_again(self, a: int, outcome: str) -> None:
        self.purchase(a, outcome)

    @rule(a=st.integers(0, len(PRICES) - 1), outcome=st.sampled_from(OUTCOMES))
    def purchase_once_more(self, a: int, outcome: str) -> None:
        self.purchase(a, outcome)

    @precondition(lambda self: bool(self.model.owned))
    @rule(data=st.data())
    def give_a_gift_link(self, data: st.DataObject) -> None:
        a = data.draw(st.sampled_from(sorted(self.model.owned)))
        response = self.client.post(f"/api/v1/articles/{self.articles[a]}/gifts", headers=self.auth)
        assert response.status_code == 201, response.json
        page = self.app.test_client().get(response.json["gift"]["url"])
        assert page.status_code == 200

    @precondition(lambda self: bool(self.model.owned))
    @rule(data=st.data())
    def publisher_refunds(self, data: st.DataObject) -> None:
        a = data.draw(st.sampled_from(sorted(self.model.owned)))
        purchases = self.client.get("/api/v1/purchases", headers=self.auth).json["purchases"]
        (purchase_id,) = [
            p["id"]
            for p in purchases
            if p["article"] == self.articles[a] and p["status"] == "active"
        ]
        response = self.client.post(
            f"/api/v1/purchases/{purchase_id}/refund", headers=bearer(self.publisher_token)
        )
        assert response.status_code == 200, response.json
        del self.model.owned[a]

    # --- rules: Stripe and cron ---

    @precondition(lambda self: bool(self.stripe.intents))
    @rule(data=st.data())
    def webhook_arrives(self, data: st.DataObject) -> None:
        intent = self.stripe.intents[data.draw(st.sampled_from(sorted(self.stripe.intents)))]
        kind = "succeeded" if intent.status == "succeeded" else "payment_failed"
        payload = {
            "id": intent.id,
            "object": "payment_intent",
            "amount": intent.amount,
            "currency": intent.currency,
            "status": intent.status,
            "created": intent.created,
            "latest_charge": intent.charge_id,
            "metadata": dict(intent.metadata),
            "livemode": False,
        }
        body, headers = signed(event(f"payment_intent.{kind}", payload))
        response = self.client.post("/webhooks/stripe", data=body, headers=headers)
        assert response.status_code == 200, response.json
        assert response.json["outcome"] != "credited"  # the purchase's answer credited it

    @rule()
    def reconcile_runs(self) -> None:
        result = self.app.test_cli_runner().invoke(args=["reconcile"])
        assert result.exit_code == 0, result.output
        assert "credited pi_" not in result.output

    @property
    def auth(self) -> dict[str, str]:
        return bearer(self.token)

    # --- what must always hold ---

    @invariant()
    def the_books_balance(self) -> None:
        assert audit() == []

    @invariant()
    def the_wallet_holds_what_the_model_says(self) -> None:
        wallet = db.session.scalar(select(Wallet).where(Wallet.user_id == self.reader_id))
        assert (wallet.balance if wallet else 0) == self.balance()

    @invariant()
    def auto_topups_are_credited_once_and_within_the_limit(self) -> None:
        rows = db.session.execute(
            select(LedgerEntry.reference, LedgerEntry.amount).where(
                LedgerEntry.kind == ENTRY_TOPUP,
                LedgerEntry.reference.in_(list(self.stripe.intents) or [""]),
            )
        ).all()
        assert sorted(rows) == sorted(self.model.credited.items())
        charged = db.session.scalar(
            select(func.coalesce(func.sum(TopUp.amount), 0)).where(
                TopUp.user_id == self.reader_id,
                TopUp.auto.is_(True),
                TopUp.credited_at.is_not(None),
            )
        )
        assert charged == self.model.charged_this_month <= max(self.model.highest_limit, 0)


@pytest.fixture()
def property_app(backend: tuple[str, Engine], app: Flask, db_connection: Any) -> Iterator[Flask]:
    _kind, engine = backend
    own = create_app(
        app_config(
            engine.url.render_as_string(hide_password=False),
            STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
            RATELIMIT_ENABLED=False,
        ),
        configure_database=False,
    )
    with own.app_context():
        yield own


def test_any_history_of_auto_topups_keeps_every_ledger_invariant(
    property_app: Flask, db_connection: Any
) -> None:
    AutoTopUpMachine.connection = db_connection
    AutoTopUpMachine.app = property_app
    AutoTopUpMachine.client = property_app.test_client()
    run_state_machine_as_test(
        AutoTopUpMachine,
        settings=settings(
            max_examples=30,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        ),
    )
    assert db.session.scalar(select(func.count(LedgerEntry.id))) == 0
