"""Property test of the ledger: a stateful machine of top-ups, purchases, refunds, disputes,
Stripe faults, reconciliation, and duplicate or out-of-order events, over two readers.

Hypothesis picks the steps; after every step the books must balance (`audit()`), every
wallet must hold exactly what a simple model says, and every succeeded PaymentIntent must
be credited once or not yet, never twice. Top-ups go through the real API; Stripe is a
fake gateway (chosen by configuration, as the app allows) that can be down, decline a card,
or charge and lose its answer, and that honours idempotency keys as Stripe does.
Events arrive through the signed webhook endpoint; `reconcile` runs as the CLI command.

test_refunds_disputes.py::test_random_histories_keep_the_books_balanced covers the event
handlers through `ingest`; this machine adds the top-up API, reconciliation, Stripe faults,
idempotent retries, failures delivered out of order, buyer refunds and buy-on-credit.
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
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import Engine, func, select

from dispatch_pay import create_app
from dispatch_pay.payments.gateway import (
    CardDeclined,
    Intent,
    PaymentProviderUnavailable,
)
from dispatch_pay.wallet.audit import audit
from models import ENTRY_TOPUP, LedgerEntry, Wallet, db
from tests.conftest import test_config as app_config
from tests.support.factories import bearer, make_article, make_token, make_user
from tests.support.fake_gateway import InMemoryGateway
from tests.support.stripe_helpers import (
    WEBHOOK_SECRET,
    event,
    recorded_topup,
    signed,
    topup_metadata,
)

PRICES = (39, 120, 250)
AMOUNTS = (50, 120, 500)
_run = itertools.count(1)


# --- Stripe, as a fake gateway -----------------------------------------------------------


class FakeStripe(InMemoryGateway):
    """PaymentIntents in memory. `mode` is how the next create call goes."""

    def __init__(self, run: int) -> None:
        super().__init__()
        self.run = run
        self.by_key: dict[str, str] = {}
        self.mode = "ok"  # ok | declined | unavailable | lost_answer
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
        if self.mode == "unavailable":
            raise PaymentProviderUnavailable("Stripe is down")
        if idempotency_key in self.by_key:  # Stripe answers a retried key with the same intent
            return self.intents[self.by_key[idempotency_key]]
        status = "requires_payment_method" if self.mode == "declined" else "succeeded"
        intent = self.add(amount, currency, metadata, status)
        self.by_key[idempotency_key] = intent.id
        if self.mode == "declined":
            raise CardDeclined("card_declined", "Your card was declined.", intent.id)
        if self.mode == "lost_answer":
            raise PaymentProviderUnavailable("read timed out")  # charged, answer lost
        return intent

    def add(self, amount: int, currency: str, metadata: dict[str, str], status: str) -> Intent:
        pi_id = f"pi_fake_{self.run}_{next(self._numbers)}"
        return self.keep_intent(
            pi_id,
            status=status,
            amount=amount,
            currency=currency,
            metadata=metadata,
            charge_id=f"ch_{pi_id}" if status == "succeeded" else None,
            created=int(time.time()),
        )

    # retrieve/recent/keys come from InMemoryGateway; fees are not what this machine checks.


def intent_payload(intent: Intent, status: str | None = None) -> dict[str, Any]:
    return {
        "id": intent.id,
        "object": "payment_intent",
        "amount": intent.amount,
        "currency": intent.currency,
        "status": status or intent.status,
        "created": intent.created,
        "latest_charge": intent.charge_id,
        "metadata": dict(intent.metadata),
        "livemode": False,
    }


def charge_payload(intent: Intent, amount_refunded: int = 0) -> dict[str, Any]:
    return {
        "id": intent.charge_id,
        "object": "charge",
        "amount": intent.amount,
        "amount_refunded": amount_refunded,
        "currency": intent.currency,
        "paid": True,
        "status": "succeeded",
        "refunded": amount_refunded >= intent.amount,
        "payment_intent": intent.id,
        "metadata": dict(intent.metadata),
    }


# --- what the money should be ---------------------------------------------------------------


@dataclass
class Pay:
    """A PaymentIntent of one of our readers, as the model sees it."""

    pi_id: str
    reader: int
    amount: int
    succeeded: bool
    buy: int | None = None  # index of the article to buy once credited
    answer_lost: bool = False
    failure_seen: bool = False  # a payment_failed event reached the app before a credit


@dataclass
class ReaderModel:
    user_id: int
    token: str
    owned: dict[int, int] = field(default_factory=dict)  # article -> price paid
    reader_refunds: int = 0


@dataclass
class TopUpRequest:
    reader: int
    body: dict[str, Any]
    key: str
    outcome: str  # ok | declined | unavailable | lost_answer
    pi_id: str | None


class LedgerMachine(RuleBasedStateMachine):
    """Drive the app the way readers, Stripe and cron do; check the books every step."""

    client: FlaskClient
    app: Flask
    connection: Any

    pays = Bundle("pays")
    sent = Bundle("sent")
    topups = Bundle("topups")

    def __init__(self) -> None:
        super().__init__()
        # Each history starts from the same database and leaves nothing behind, so that
        # Hypothesis can replay and shrink a failing one.
        db.session.remove()
        self.savepoint = self.connection.begin_nested()
        self.stripe = FakeStripe(next(_run))
        self.app.extensions["payment_gateway"] = self.stripe
        self.publisher_token = make_token(make_user(role="publisher"))
        self.readers: list[ReaderModel] = []
        for _ in range(2):
            user = make_user()
            self.readers.append(ReaderModel(user.id, make_token(user)))
        self.articles = [make_article(price=price).slug for price in PRICES]
        self.by_pi: dict[str, Pay] = {}
        self.credited: set[str] = set()
        self.refunded_max: dict[str, int] = {}
        self.dispute: dict[str, str] = {}  # pi -> open / won / lost
        self.keys = itertools.count(1)
        self.requests: list[TopUpRequest] = []

    # --- the model ---

    def clawback(self, pi_id: str) -> int:
        amount = self.by_pi[pi_id].amount
        lost = amount if self.dispute.get(pi_id) == "lost" else 0
        return min(amount, self.refunded_max.get(pi_id, 0) + lost)

    def balance(self, r: int) -> int:
        mine = [p for p in self.credited if self.by_pi[p].reader == r]
        credits = sum(self.by_pi[p].amount - self.clawback(p) for p in mine)
        return credits - sum(self.readers[r].owned.values())

    def frozen(self, r: int) -> bool:
        disputes = sum(
            1 for p, s in self.dispute.items() if s == "open" and self.by_pi[p].reader == r
        )
        return disputes > 0 or self.balance(r) < 0

    def expected_purchase(self, r: int, a: int) -> int:
        if a in self.readers[r].owned:
            return 200
        if self.frozen(r):
            return 409
        if self.balance(r) < PRICES[a]:
            return 402
        return 201

    def purchase_in_model(self, r: int, a: int) -> None:
        if self.expected_purchase(r, a) == 201:
            self.readers[r].owned[a] = PRICES[a]

    def credit_in_model(self, pi_id: str) -> None:
        pay = self.by_pi[pi_id]
        if pi_id in self.credited or not pay.succeeded:
            return
        self.credited.add(pi_id)
        if pay.buy is not None:
            self.purchase_in_model(pay.reader, pay.buy)

    def register(self, intent: Intent, r: int, buy: int | None) -> Pay:
        pay = Pay(intent.id, r, intent.amount, intent.status == "succeeded", buy)
        self.by_pi[intent.id] = pay
        return pay

    # --- the app ---

    def deliver(self, evt: dict[str, Any]) -> str:
        payload, headers = signed(evt)
        response = self.client.post("/webhooks/stripe", data=payload, headers=headers)
        assert response.status_code == 200, response.json
        return str(response.json["outcome"])

    def post_topup(self, request: TopUpRequest) -> Any:
        headers = {**bearer(self.readers[request.reader].token), "Idempotency-Key": request.key}
        return self.client.post("/api/v1/wallet/topups", json=request.body, headers=headers)

    # --- rules: readers ---

    @rule(
        target=topups,
        r=st.integers(0, 1),
        amount=st.sampled_from(AMOUNTS),
        outcome=st.sampled_from(["ok", "ok", "declined", "unavailable", "lost_answer"]),
        buy=st.one_of(st.none(), st.integers(0, len(PRICES) - 1)),
    )
    def top_up(self, r: int, amount: int, outcome: str, buy: int | None) -> TopUpRequest:
        body: dict[str, Any] = {"amount": amount, "currency": "usd", "payment_method": "pm_card"}
        if buy is not None:
            body["buy"] = self.articles[buy]
        request = TopUpRequest(r, body, f"key-{next(self.keys)}", outcome, None)
        self.requests.append(request)
        before = set(self.stripe.intents)
        self.stripe.mode = outcome
        try:
            response = self.post_topup(request)
        finally:
            self.stripe.mode = "ok"
        created = [self.stripe.intents[p] for p in self.stripe.intents if p not in before]
        if outcome == "unavailable":
            assert created == []
        else:
            (intent,) = created
            request.pi_id = intent.id
            pay = self.register(intent, r, buy)
            pay.answer_lost = outcome == "lost_answer"
        if outcome == "ok":
            assert response.status_code == 201, response.json
            assert response.json["topup"]["status"] == "succeeded"
            self.credit_in_model(intent.id)
        elif outcome == "declined":
            assert response.status_code == 402, response.json
            assert response.json["error"]["code"] == "card_declined"
        else:
            assert response.status_code == 503, response.json
            assert response.json["error"]["code"] == "payment_provider_unavailable"
        return request

    @rule(request=topups)
    def retry_top_up_with_its_key(self, request: TopUpRequest) -> None:
        """The reader sends the same top-up again with the same Idempotency-Key."""
        before = set(self.stripe.intents)
        response = self.post_topup(request)
        created = [p for p in self.stripe.intents if p not in before]
        pay = self.by_pi.get(request.pi_id or "")
        if request.outcome == "declined":
            assert response.status_code == 402, response.json
        elif request.outcome == "unavailable" and request.pi_id is None:
            # Stripe was never reached: now it is, and charges once.
            assert response.status_code == 201, response.json
            (pi_id,) = created
            request.pi_id = pi_id
            self.register(self.stripe.intents[pi_id], request.reader, self._buy_of(request))
            self.credit_in_model(pi_id)
        elif (
            pay is not None
            and pay.answer_lost
            and pay.failure_seen
            and pay.pi_id not in self.credited
        ):
            # A failure event (out of order) marked the top-up failed before any credit:
            # the retry says so; the charge is credited by its success event or reconcile.
            assert response.status_code == 402, response.json
        else:
            assert response.status_code == 201, response.json
            assert pay is not None and response.json["topup"]["id"] == pay.pi_id
            self.credit_in_model(pay.pi_id)  # Stripe returns the same succeeded intent
        assert created == [] or request.outcome == "unavailable"

    def _buy_of(self, request: TopUpRequest) -> int | None:
        slug = request.body.get("buy")
        return self.articles.index(slug) if slug else None

    @rule(r=st.integers(0, 1), a=st.integers(0, len(PRICES) - 1))
    def purchase(self, r: int, a: int) -> None:
        expected = self.expected_purchase(r, a)
        response = self.client.post(
            f"/api/v1/articles/{self.articles[a]}/purchase", headers=bearer(self.readers[r].token)
        )
        assert response.status_code == expected, (response.json, self.balance(r))
        self.purchase_in_model(r, a)

    @precondition(lambda self: any(self.frozen(r) for r in range(len(self.readers))))
    @rule(a=st.integers(0, len(PRICES) - 1))
    def purchase_while_frozen(self, a: int) -> None:
        """A frozen wallet buys nothing, however much it holds."""
        r = next(r for r in range(len(self.readers)) if self.frozen(r))
        self.purchase(r, a)

    @precondition(lambda self: any(self.unanswered(r.pi_id) for r in self.requests))
    @rule(data=st.data())
    def retry_a_top_up_whose_answer_was_lost(self, data: st.DataObject) -> None:
        """The reader retries while the charge is still unknown to the app."""
        lost = [r for r in self.requests if self.unanswered(r.pi_id)]
        self.retry_top_up_with_its_key(data.draw(st.sampled_from(lost)))

    def unanswered(self, pi_id: str | None) -> bool:
        pay = self.by_pi.get(pi_id or "")
        return pay is not None and pay.answer_lost and pi_id not in self.credited

    @rule(r=st.integers(0, 1), a=st.integers(0, len(PRICES) - 1), by_publisher=st.booleans())
    def refund_purchase(self, r: int, a: int, by_publisher: bool) -> None:
        reader = self.readers[r]
        if a not in reader.owned:
            return
        purchase_id = self._active_purchase_id(r, a)
        token = self.publisher_token if by_publisher else reader.token
        response = self.client.post(
            f"/api/v1/purchases/{purchase_id}/refund", headers=bearer(token)
        )
        if not by_publisher and reader.reader_refunds >= 3:
            assert response.status_code == 409, response.json
            assert response.json["error"]["code"] == "refund_limit_reached"
            return
        assert response.status_code == 200, response.json
        del reader.owned[a]
        if not by_publisher:
            reader.reader_refunds += 1

    def _active_purchase_id(self, r: int, a: int) -> int:
        response = self.client.get("/api/v1/purchases", headers=bearer(self.readers[r].token))
        slug = self.articles[a]
        (found,) = [
            p["id"]
            for p in response.json["purchases"]
            if p["article"] == slug and p["status"] == "active"
        ]
        return int(found)

    # --- rules: Stripe ---

    @rule(target=pays, r=st.integers(0, 1), amount=st.sampled_from(AMOUNTS))
    def paid_in_the_browser(self, r: int, amount: int) -> Pay:
        """A top-up that Stripe.js confirmed (say after 3-D Secure): no one told the app."""
        reader_id = self.readers[r].user_id
        metadata = topup_metadata(reader_id, recorded_topup(reader_id, amount))
        return self.register(self.stripe.add(amount, "usd", metadata, "succeeded"), r, None)

    @rule(target=pays, request=topups)
    def a_top_up_of_the_api(self, request: TopUpRequest) -> Pay:
        """Bring API top-ups into the events' reach."""
        if request.pi_id is None:
            return multiple()  # type: ignore[return-value]  # nothing was charged
        return self.by_pi[request.pi_id]

    @rule(target=sent, pay=pays)
    def payment_succeeded(self, pay: Pay) -> dict[str, Any]:
        intent = self.stripe.intents[pay.pi_id]
        evt = event("payment_intent.succeeded", intent_payload(intent))
        outcome = self.deliver(evt)
        if not pay.succeeded:
            assert outcome in ("ignored", "not_succeeded")  # not a success at Stripe
            return evt
        expected = "already_credited" if pay.pi_id in self.credited else "credited"
        assert outcome == expected
        self.credit_in_model(pay.pi_id)
        return evt

    @rule(target=sent, pay=pays)
    def payment_failed(self, pay: Pay) -> dict[str, Any]:
        """A failed attempt's event, possibly after (or instead of) the success."""
        intent = self.stripe.intents[pay.pi_id]
        obj = {
            **intent_payload(intent, status="requires_payment_method"),
            "last_payment_error": {"code": "card_declined"},
        }
        evt = event("payment_intent.payment_failed", obj)
        assert self.deliver(evt) == "marked_failed"
        if pay.pi_id not in self.credited:
            pay.failure_seen = True
        return evt

    @rule(target=sent, pay=pays, refunded=st.integers(1, 500))
    def card_refunded(self, pay: Pay, refunded: int) -> dict[str, Any]:
        if not pay.succeeded:
            return multiple()  # type: ignore[return-value]  # no charge to refund
        total = min(refunded, pay.amount)
        evt = event("charge.refunded", charge_payload(self.stripe.intents[pay.pi_id], total))
        self.deliver(evt)
        self.credit_in_model(pay.pi_id)  # a refund may come before the success
        self.refunded_max[pay.pi_id] = max(self.refunded_max.get(pay.pi_id, 0), total)
        return evt

    @rule(target=sent, pay=pays, closed=st.booleans(), won=st.booleans())
    def disputed(self, pay: Pay, closed: bool, won: bool) -> dict[str, Any]:
        if not pay.succeeded:
            return multiple()  # type: ignore[return-value]
        intent = self.stripe.intents[pay.pi_id]
        status = ("won" if won else "lost") if closed else "needs_response"
        obj = {
            "id": f"dp_{pay.pi_id}",
            "object": "dispute",
            "amount": pay.amount,
            "currency": "usd",
            "status": status,
            "charge": charge_payload(intent),
            "payment_intent": pay.pi_id,
        }
        evt = event("charge.dispute.closed" if closed else "charge.dispute.created", obj)
        self.deliver(evt)
        self.credit_in_model(pay.pi_id)
        previous = self.dispute.get(pay.pi_id)
        if not closed and previous is None:
            self.dispute[pay.pi_id] = "open"
        elif closed and previous in (None, "open"):
            self.dispute[pay.pi_id] = status
        return evt

    @rule(evt=sent)
    def delivered_again(self, evt: dict[str, Any]) -> None:
        """Stripe retries an event it already delivered."""
        assert self.deliver(evt) == "duplicate"

    @rule(evt=consumes(sent))
    def replayed_under_a_new_id(self, evt: dict[str, Any]) -> None:
        """The same facts in a new event, later than newer ones: out of order."""
        self.deliver({**evt, "id": f"{evt['id']}_replayed"})

    @rule()
    def reconcile(self) -> None:
        result = self.app.test_cli_runner().invoke(args=["reconcile"])
        assert result.exit_code == 0, result.output
        for pay in list(self.by_pi.values()):
            self.credit_in_model(pay.pi_id)

    def teardown(self) -> None:
        db.session.remove()
        if self.savepoint.is_active:
            self.savepoint.rollback()

    # --- what must always hold ---

    @invariant()
    def the_books_balance(self) -> None:
        assert audit() == []

    @invariant()
    def wallets_hold_what_the_model_says(self) -> None:
        for r, reader in enumerate(self.readers):
            wallet = db.session.scalar(select(Wallet).where(Wallet.user_id == reader.user_id))
            balance = wallet.balance if wallet else 0
            assert balance == self.balance(r), (r, balance, self.balance(r))
            assert (wallet.is_frozen if wallet else False) == self.frozen(r)

    @invariant()
    def every_payment_is_credited_once_or_not_yet(self) -> None:
        rows = db.session.execute(
            select(LedgerEntry.reference, LedgerEntry.amount).where(
                LedgerEntry.kind == ENTRY_TOPUP,
                LedgerEntry.reference.in_(list(self.by_pi) or [""]),
            )
        ).all()
        credited = {ref: amount for ref, amount in rows}
        assert len(credited) == len(rows)  # never twice
        assert set(credited) == self.credited
        for pi_id, amount in credited.items():
            assert amount == self.by_pi[pi_id].amount


@pytest.fixture()
def property_client(backend: tuple[str, Engine], app: Flask, db_connection: Any) -> Iterator[Flask]:
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


def test_any_history_of_payments_keeps_every_ledger_invariant(
    property_client: Flask, db_connection: Any
) -> None:
    LedgerMachine.connection = db_connection
    LedgerMachine.app = property_client
    LedgerMachine.client = property_client.test_client()
    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(
            max_examples=40,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        ),
    )
    # Every history was rolled back: nothing of them is left for the next test.
    assert db.session.scalar(select(func.count(LedgerEntry.id))) == 0
