"""Closing a reader's account (`DELETE /api/v1/me`): the balance goes back to the cards
that paid it, newest top-up first, then the account is shut and its email erased.

Ledger entries stay (the wallet and its entries keep pointing at the anonymised user), so
`audit` still holds; each card refund is a `topup_refunded` entry with the same
reference Stripe's later `charge.refunded` event would produce, so it is never counted
twice.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, func, select, update

from dispatch_pay.accounts import sessions
from dispatch_pay.accounts.services import hash_password, require_password
from dispatch_pay.errors import DomainError
from dispatch_pay.mail.outbox import queue_mail
from dispatch_pay.payments.gateway import (
    PaymentGateway,
    PaymentProviderUnavailable,
    PaymentRequestRejected,
)
from dispatch_pay.wallet.disputes import card_refund_room, record_card_refund
from dispatch_pay.wallet.services import lock_reader, reverse_purchase
from models import (
    DELETED_EMAIL_DOMAIN,
    PURCHASE_ACTIVE,
    AccountLink,
    ApiToken,
    GiftLink,
    PrivateFeed,
    Purchase,
    RefundedBy,
    TopUp,
    User,
    Wallet,
    db,
    utcnow,
)

RECENT_LOGIN = timedelta(minutes=10)


@dataclass(frozen=True)
class PlannedRefund:
    topup_id: int
    payment_intent_id: str
    amount: int
    currency: str
    refunded_after: int  # the top-up's cumulative card refunds once this one is made


def _wallets(user: User) -> list[Wallet]:
    return list(
        db.session.scalars(
            select(Wallet).where(Wallet.user_id == user.id).order_by(Wallet.id).with_for_update()
        )
    )


def plan_refunds(user: User) -> list[PlannedRefund]:
    """Refuse while a dispute is open; else which cards get how much, newest top-up first."""
    planned: list[PlannedRefund] = []
    for wallet in _wallets(user):
        if wallet.open_disputes > 0:
            raise DomainError(
                "dispute_open",
                "A payment of yours is disputed with your bank. The account can be deleted "
                "once the dispute is closed.",
                status=409,
            )
        if wallet.balance < 0:
            raise DomainError(
                "wallet_frozen",
                "Your wallet is below zero; the account can be deleted once it is settled.",
                status=409,
            )
        left = wallet.balance
        topups = db.session.scalars(
            select(TopUp)
            .where(
                TopUp.user_id == user.id,
                TopUp.currency == wallet.currency,
                TopUp.credited_at.is_not(None),
            )
            .order_by(TopUp.credited_at.desc(), TopUp.id.desc())
        )
        for topup in topups:
            if left <= 0:
                break
            refunded, room = card_refund_room(topup)
            amount = min(room, left)
            if amount > 0 and topup.payment_intent_id:
                planned.append(
                    PlannedRefund(
                        topup.id,
                        topup.payment_intent_id,
                        amount,
                        topup.currency,
                        refunded + amount,
                    )
                )
                left -= amount
    return planned


def refund_to_cards(gateway: PaymentGateway, planned: list[PlannedRefund]) -> list[PlannedRefund]:
    """Ask Stripe for each refund (no transaction open); those Stripe made."""
    made: list[PlannedRefund] = []
    for refund in planned:
        # The key names the refund by the top-up's cumulative total: a retry after a
        # crash or timeout repeats the same request, and Stripe answers it once.
        key = f"dispatch-close-{refund.payment_intent_id}-{refund.refunded_after}"
        try:
            gateway.refund(refund.payment_intent_id, refund.amount, key)
        except (PaymentProviderUnavailable, PaymentRequestRejected):
            break
        made.append(refund)
    return made


def closed_accounts_with_money() -> list[int]:
    """Deleted accounts whose wallet holds money (credited after the account closed)."""
    return list(
        db.session.scalars(
            select(User.id)
            .join(Wallet, Wallet.user_id == User.id)
            .where(User.email.endswith(DELETED_EMAIL_DOMAIN), Wallet.balance > 0)
            .distinct()
            .order_by(User.id)
        )
    )


def last_purchase_id(user: User) -> int:
    """The newest purchase when the refunds are planned (read under the wallet locks)."""
    return int(
        db.session.scalar(select(func.max(Purchase.id)).where(Purchase.user_id == user.id)) or 0
    )


def record_refunds(user: User, made: list[PlannedRefund], planned_after_purchase: int) -> None:
    """Record what Stripe refunded; then undo purchases made while Stripe was asked.

    The plan's locks are released before Stripe is called, so the reader (or an agent of
    theirs) could buy in that moment: the refunds would then take the wallet below zero,
    the reader keeping both the text and the money. Such purchases, newest first, are
    reversed until the wallet is back at zero or above.
    """
    lock_reader(user.id)  # the order refund_purchase takes: the reader, then the wallet
    for refund in made:
        topup = db.session.get(TopUp, refund.topup_id)
        assert topup is not None
        record_card_refund(topup, refund.refunded_after)
    for wallet in _wallets(user):
        if wallet.balance < 0:
            _undo_purchases_since(wallet, planned_after_purchase)


def _undo_purchases_since(wallet: Wallet, purchase_id: int) -> None:
    bought_meanwhile = db.session.scalars(
        select(Purchase)
        .where(
            Purchase.wallet_id == wallet.id,
            Purchase.id > purchase_id,
            Purchase.status == PURCHASE_ACTIVE,
        )
        .order_by(Purchase.id.desc())
    ).all()
    for purchase in bought_meanwhile:
        if wallet.balance >= 0:
            break
        reverse_purchase(purchase, wallet, RefundedBy.READER)


def check_may_close(user: User, password: str | None) -> None:
    """The password, or a browser session that logged in within the last few minutes."""
    if password is not None:
        require_password(user, password)
        return
    session_id = sessions.current_session_id()
    record = sessions.session_record(session_id) if session_id else None
    if record is None or utcnow() - record.created_at > RECENT_LOGIN:
        raise DomainError(
            "reauthentication_required",
            "Confirm with your password (or log in again) to delete your account.",
            status=422,
            fields={"password": ["Enter your password."]},
        )


def shut_account(user: User) -> None:
    """Tokens and sessions revoked, login impossible, email erased (the ledger stays)."""
    now = utcnow()
    db.session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    sessions.end_sessions(user)
    db.session.execute(
        update(AccountLink).where(AccountLink.user_id == user.id).values(used_at=now)
    )
    # Secret URLs are credentials too: the private feed ends, unused gift reads with it.
    db.session.execute(delete(PrivateFeed).where(PrivateFeed.user_id == user.id))
    db.session.execute(
        update(GiftLink)
        .where(GiftLink.giver_id == user.id, GiftLink.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    old_email = user.email
    queue_mail("account_deleted", old_email, "Your account is deleted")
    user.password_hash = hash_password(secrets.token_urlsafe(32))
    user.email = f"deleted-{user.id}{DELETED_EMAIL_DOMAIN}"
    db.session.flush()
