"""Attack, round 3 (PostgreSQL): what touches a top-up and its wallet besides the credit.

Same method as test_attack_quick_credit_races: one party is held at a given point by a
pause on a function it calls (nothing else about it changes), the test waits until
PostgreSQL shows the other party waiting, so the interleaving is always the same.
"""

from __future__ import annotations

import secrets
import threading
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from dispatch_pay.payments.gateway import require_gateway
from dispatch_pay.wallet import crediting, disputes
from dispatch_pay.wallet.audit import audit
from dispatch_pay.wallet.ledger import locked_wallet
from models import ENTRY_TOPUP_REFUNDED, LedgerEntry, TopUp, db
from tests.e2e import test_concurrency as races
from tests.e2e.test_attack_quick_credit_races import (
    VIEW,
    Pause,
    in_thread,
    post,
    success_of,
)
from tests.e2e.test_concurrency import fund
from tests.support.factories import PASSWORD, bearer, make_token, make_user
from tests.support.servers import LocalStripe
from tests.support.stripe_helpers import (
    card_top_up,
    charge_obj,
    event,
    recorded_topup,
    signed,
)

pytestmark = [pytest.mark.postgres_only]

own_stripe = races.own_stripe
race_app = races.race_app


def fresh_topup(**where: Any) -> TopUp:
    topup = db.session.scalar(
        select(TopUp).filter_by(**where).execution_options(populate_existing=True)
    )
    assert topup is not None
    return topup


# -- 1. two charge.refunded events of one credited top-up ---------------------------------


def test_a_slower_older_refund_event_does_not_lower_the_recorded_card_refund(
    race_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stripe sends `charge.refunded` after each partial refund, with the charge's
    cumulative `amount_refunded`: 100, then 200 (deliveries overlap; Stripe does not
    order them). The view's handler finds the credited top-up (`find_topup`, no lock)
    and only then `record_card_refund` locks the wallet and writes
    `topup.amount_refunded = max(<what it read>, 100)`. When the delivery of 200 commits
    in between, the value read is the 0 from before it, so the row goes from 200 back to
    100: a lost update of Stripe's refund total (the new row lock of `topup_for_intent`
    is not taken on this path). The ledger is right (it counts entries), so `audit` sees
    nothing either: it takes the max of this field and the stored events."""
    with race_app.app_context():
        reader_id = make_user().id
        fund(reader_id, 100)
        reference = recorded_topup(reader_id, 500)
    pi_id = f"pi_refund_{secrets.token_hex(8)}"
    credited = post(race_app.wsgi_app, success_of(pi_id, reader_id, reference), VIEW)
    assert credited.json["outcome"] == "credited"

    first = signed(event("charge.refunded", charge_obj(pi_id, 500, 100, reader_id)))
    second = signed(event("charge.refunded", charge_obj(pi_id, 500, 200, reader_id)))
    pause = Pause(monkeypatch, disputes, "locked_wallet")

    def slow_first() -> Any:
        pause.arm()
        return post(race_app.wsgi_app, first, VIEW)

    thread, result = in_thread(slow_first)
    assert pause.reached.wait(timeout=10)  # it has read the top-up, no lock yet
    later = post(race_app.wsgi_app, second, VIEW)  # the 200 one, committed meanwhile
    assert (later.status_code, later.json["outcome"]) == (200, "debited 200")
    pause.release()
    thread.join(timeout=30)
    assert "error" not in result, result
    assert result["value"].status_code == 200

    with race_app.app_context():
        topup = fresh_topup(payment_intent_id=pi_id)
        debited = db.session.scalars(
            select(LedgerEntry.amount).where(
                LedgerEntry.payment_intent_id == pi_id,
                LedgerEntry.kind == ENTRY_TOPUP_REFUNDED,
            )
        ).all()
        problems = audit()
    assert debited == [-200]
    assert problems == []
    # Stripe's total is 200; the row must not go back to an older total.
    assert topup.amount_refunded == 200


# -- 2. reconcile and account closing, one reader with two wallets ------------------------


class SecondWalletPause:
    """On `crediting.locked_wallet`: in the armed thread, the call for `reader_id`'s
    second wallet (the first is locked by then) stops until `release`."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, reader_id: int) -> None:
        self.reader_id = reader_id
        self.seen: list[str] = []
        self.reached = threading.Event()
        self.go = threading.Event()
        self.local = threading.local()
        monkeypatch.setattr(crediting, "locked_wallet", self)

    def arm(self) -> None:
        self.local.armed = True

    def __call__(self, user_id: int, currency: str) -> Any:
        if getattr(self.local, "armed", False) and user_id == self.reader_id:
            if currency not in self.seen:
                self.seen.append(currency)
            if len(self.seen) == 2 and currency == self.seen[1] and not self.reached.is_set():
                self.reached.set()
                assert self.go.wait(timeout=30)
        return locked_wallet(user_id, currency)


def test_reconcile_and_closing_an_account_with_two_currencies_do_not_deadlock(
    race_app: Flask, own_stripe: LocalStripe, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader with a eur and a usd wallet (eur made first: the lower id), filled by a
    usd card top-up and then a eur one. `reconcile` runs in one transaction and calls
    `credit_ours` for every recent PaymentIntent in the order Stripe lists them, credited
    or not: it locks the usd wallet (and now the usd top-up), then the eur wallet.
    (localstripe lists oldest first; Stripe lists newest first, so there the same
    happens to a reader whose wallets were made in the other order.) Closing the account
    (`DELETE /api/v1/me`, `closing._wallets`) locks all the reader's wallets in id order:
    eur, then usd. Run together they deadlock and PostgreSQL aborts one of them: the
    deletion answers 503 database_unavailable, or the whole reconcile run fails (none of
    its credits land), though each alone succeeds. One wallet then its top-up is the
    order elsewhere; two wallets of one reader have no common order. Now each of
    reconcile's credits is its own transaction: it never holds two wallets."""
    client = race_app.test_client()
    with race_app.app_context():
        reader = make_user()
        reader_id = reader.id
        token = make_token(reader)
        locked_wallet(reader_id, "eur")  # the eur wallet: the lower id
        db.session.commit()
        fund(reader_id, 100)
    usd = card_top_up(client, own_stripe.base, token, 500).json["topup"]["id"]
    eur = card_top_up(client, own_stripe.base, token, 700, currency="eur").json["topup"]["id"]
    with race_app.app_context():
        listed = require_gateway().recent_intents(0)
        order = [i.id for i in listed if i.id in (usd, eur)]
        db.session.commit()
    assert order == [usd, eur]  # as localstripe lists them: the usd wallet is locked first

    pause = SecondWalletPause(monkeypatch, reader_id)

    def reconcile() -> Any:
        pause.arm()
        with race_app.app_context():
            lines = crediting.reconcile(require_gateway(), timedelta(days=1))
            db.session.commit()
            return lines

    recon_thread, reconciled = in_thread(reconcile)
    assert pause.reached.wait(timeout=30)  # usd wallet and top-up locked, eur not yet
    assert pause.seen == ["usd", "eur"]
    close_thread, closed = in_thread(
        lambda: race_app.test_client().delete(
            "/api/v1/me", json={"password": PASSWORD}, headers=bearer(token)
        )
    )
    # Closing runs while reconcile is held before its second wallet. Reconcile's first
    # credit has been committed, so closing takes both wallets and is done; when reconcile
    # held the usd wallet still, closing took eur and waited for usd (then: deadlock).
    close_thread.join(timeout=10)
    pause.go.set()
    recon_thread.join(timeout=30)
    close_thread.join(timeout=30)
    assert not recon_thread.is_alive() and not close_thread.is_alive()

    outcomes = {
        "reconcile": type(reconciled["error"]).__name__ if "error" in reconciled else "ok",
        "close": (closed["value"].status_code, closed["value"].json)
        if "value" in closed
        else repr(closed.get("error")),
    }
    assert "error" not in reconciled, outcomes
    assert closed["value"].status_code == 200, outcomes
