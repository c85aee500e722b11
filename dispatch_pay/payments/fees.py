"""Stripe's fee per credited top-up: recorded once, from whatever Stripe already sent.

The fee lives on the charge's balance transaction. It arrives for free when Stripe sends
the charge with its balance transaction expanded (our own create/retrieve calls ask for
that; a `charge.succeeded`/`charge.updated` event may carry it); `reconcile` asks the
gateway for the fees still unknown, in a bounded batch of recent top-ups, so that no
reader's request or webhook waits on an extra Stripe call.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from datetime import timedelta

from sqlalchemy import select, update

from dispatch_pay.money import CURRENCIES, format_money
from dispatch_pay.payments.gateway import (
    Fee,
    PaymentGateway,
    PaymentRequestRejected,
)
from models import TopUp, db, utcnow

log = logging.getLogger(__name__)

# Per `reconcile` run: a few seconds of Stripe requests at most; older ones wait.
FEE_BATCH = 50


def record_fee(topup_id: int, fee: Fee) -> bool:
    """Store the fee on the top-up unless one is stored already; True if this call did.

    A conditional UPDATE, so that two reporters (webhook and reconcile, say) racing on
    the same top-up store it once; a later, different value is logged and ignored.
    """
    if fee.currency not in CURRENCIES:
        # The API's Money lists only the currencies we sell in; a fee settled in another
        # stays unknown rather than break that promise (logged for the books).
        log.warning("top-up %s: Stripe fee %s %s not recorded", topup_id, fee.amount, fee.currency)
        return False
    stored = db.session.execute(
        update(TopUp)
        .where(TopUp.id == topup_id, TopUp.fee.is_(None))
        .values(
            fee=fee.amount,
            fee_currency=fee.currency,
            fee_details=[asdict(detail) for detail in fee.details],
            fee_recorded_at=utcnow(),
        )
        .execution_options(synchronize_session="fetch")
    )
    if stored.rowcount:  # type: ignore[attr-defined]  # CursorResult of an UPDATE
        return True
    topup = db.session.get(TopUp, topup_id)
    if topup is not None and (topup.fee, topup.fee_currency) != (fee.amount, fee.currency):
        log.warning(
            "top-up %s: Stripe now reports fee %s %s, %s %s kept",
            topup_id,
            fee.amount,
            fee.currency,
            topup.fee,
            topup.fee_currency,
        )
    return False


def topups_without_fee(since_days: int, limit: int = FEE_BATCH) -> list[tuple[int, str]]:
    """(top-up id, PaymentIntent id) of recent credited top-ups whose fee is unknown."""
    since = utcnow() - timedelta(days=since_days)
    rows = db.session.execute(
        select(TopUp.id, TopUp.payment_intent_id)
        .where(
            TopUp.credited_at.is_not(None),
            TopUp.credited_at >= since,
            TopUp.fee.is_(None),
            TopUp.payment_intent_id.is_not(None),
        )
        .order_by(TopUp.credited_at.desc(), TopUp.id.desc())
        .limit(limit)
    ).all()
    return [(int(topup_id), str(pi_id)) for topup_id, pi_id in rows]


def ask_fee(gateway_: PaymentGateway, topup_id: int, pi_id: str) -> Fee | None:
    """Stripe's fee for one top-up; None when Stripe has none yet or refused the lookup
    (asked again next run). Call it with no transaction open; PaymentProviderUnavailable
    propagates so that the batch stops."""
    try:
        return gateway_.charge_fee(pi_id)
    except PaymentRequestRejected as exc:
        log.info("no fee for top-up %s (%s): Stripe refused the lookup: %s", topup_id, pi_id, exc)
        return None


def fee_line(topup_id: int, fee: Fee) -> str:
    return f"fee of top-up {topup_id}: {format_money(fee.amount, fee.currency)}"
