"""The reader's own daily spending cap: purchases in a UTC day stay within it.

The cap is in one currency and limits purchases in that currency. It is checked with
the wallet's row locked (the same lock that guards the balance), so parallel purchases
are counted one after another and cannot pass it together.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time

from sqlalchemy import func, select

from dispatch_pay.errors import DomainError
from models import PURCHASE_ACTIVE, Purchase, User, Wallet, WalletSettings, db, utcnow


def settings_of(user_id: int) -> WalletSettings | None:
    return db.session.get(WalletSettings, user_id)


def set_daily_cap(user: User, cap: dict[str, int | str] | None) -> WalletSettings:
    settings = settings_of(user.id)
    if settings is None:
        settings = WalletSettings(user_id=user.id)
        db.session.add(settings)
    settings.daily_cap_amount = int(cap["amount"]) if cap else None
    settings.daily_cap_currency = str(cap["currency"]) if cap else None
    settings.updated_at = utcnow()
    db.session.flush()
    return settings


def start_of_day(now: datetime | None = None) -> datetime:
    now = now or utcnow()
    return datetime.combine(now.astimezone(UTC).date(), time(0), tzinfo=UTC)


def spent_today(user_id: int, currency: str) -> int:
    """Active purchases since midnight UTC (a refund gives its amount back to the day)."""
    return int(
        db.session.scalar(
            select(func.coalesce(func.sum(Purchase.amount), 0)).where(
                Purchase.user_id == user_id,
                Purchase.currency == currency,
                Purchase.status == PURCHASE_ACTIVE,
                Purchase.created_at >= start_of_day(),
            )
        )
        or 0
    )


@dataclass(frozen=True)
class CapRoom:
    cap: int
    spent: int


def cap_room(user_id: int, currency: str) -> CapRoom | None:
    """The cap and today's spending, when the reader capped spending in this currency."""
    settings = settings_of(user_id)
    if settings is None or settings.daily_cap_currency != currency:
        return None
    assert settings.daily_cap_amount is not None  # the CHECK keeps amount and currency together
    return CapRoom(cap=settings.daily_cap_amount, spent=spent_today(user_id, currency))


def check_daily_cap(user_id: int, wallet: Wallet, price: int) -> None:
    """Refuse a purchase that would take today's spending over the cap (`wallet` locked)."""
    room = cap_room(user_id, wallet.currency)
    if room is None:
        return
    cap, spent = room.cap, room.spent
    if spent + price > cap:
        raise DomainError(
            "spending_cap_reached",
            "This purchase would go over the daily spending cap you set; nothing was charged. "
            "Raise or remove the cap on your wallet page, or buy tomorrow.",
            status=402,
            extra={
                "daily_cap": {"amount": cap, "currency": wallet.currency},
                "spent_today": {"amount": spent, "currency": wallet.currency},
            },
        )
