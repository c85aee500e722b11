"""The prepaid wallet: an append-only ledger, purchases, Stripe top-ups, disputes, events."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, one_of, utcnow

if TYPE_CHECKING:
    from models.catalog import Article


class EntryKind(StrEnum):
    """Ledger entry kinds. Credits are positive, debits negative."""

    TOPUP = "topup"  # + a succeeded PaymentIntent
    PURCHASE = "purchase"  # - an article bought
    REFUND = "refund"  # + a purchase refunded to the wallet
    TOPUP_REFUNDED = "topup_refunded"  # - card refund of a top-up (Stripe charge.refunded)
    DISPUTE = "dispute"  # - a lost dispute of a top-up
    ADJUSTMENT = "adjustment"  # +/- an operator's correction


class PurchaseStatus(StrEnum):
    ACTIVE = "active"
    REFUNDED = "refunded"


class RefundedBy(StrEnum):
    READER = "reader"
    PUBLISHER = "publisher"


class TopUpStatus(StrEnum):
    """A PaymentIntent's status as Stripe names it, plus our own `failed`."""

    REQUIRES_PAYMENT_METHOD = "requires_payment_method"
    REQUIRES_CONFIRMATION = "requires_confirmation"
    REQUIRES_ACTION = "requires_action"
    PROCESSING = "processing"
    REQUIRES_CAPTURE = "requires_capture"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @classmethod
    def of(cls, value: str) -> TopUpStatus | None:
        """The status Stripe reported, if it is one we know (a new one is not stored)."""
        try:
            return cls(value)
        except ValueError:
            return None

    @property
    def settled(self) -> bool:
        """Nothing more will happen to this top-up's payment."""
        return self in (TopUpStatus.SUCCEEDED, TopUpStatus.FAILED, TopUpStatus.CANCELED)


class DisputeStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class DisputeOutcome(StrEnum):
    WON = "won"
    LOST = "lost"


# The names the code has always used for the kinds and statuses.
ENTRY_TOPUP = EntryKind.TOPUP
ENTRY_PURCHASE = EntryKind.PURCHASE
ENTRY_REFUND = EntryKind.REFUND
ENTRY_TOPUP_REFUNDED = EntryKind.TOPUP_REFUNDED
ENTRY_DISPUTE = EntryKind.DISPUTE
ENTRY_ADJUSTMENT = EntryKind.ADJUSTMENT
WALLET_ACTIVE = "active"
WALLET_FROZEN = "frozen"


class Wallet(Base):
    """One reader's money in one currency. `balance` caches the sum of its entries; it
    is only changed together with a new entry, under a row lock, and `audit` checks it."""

    __tablename__ = "wallets"
    __table_args__ = (UniqueConstraint("user_id", "currency"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    currency: Mapped[str] = mapped_column(String(3))
    balance: Mapped[int] = mapped_column(Integer, default=0)
    open_disputes: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def is_frozen(self) -> bool:
        return self.open_disputes > 0 or self.balance < 0

    @property
    def status(self) -> str:
        return WALLET_FROZEN if self.is_frozen else WALLET_ACTIVE


class LedgerEntry(Base):
    """An immutable movement of money. (kind, reference) is unique: no effect twice."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        UniqueConstraint("kind", "reference"),
        one_of("kind", EntryKind, name="kind_known"),
        CheckConstraint("amount <> 0", name="amount_not_zero"),
        Index("ix_ledger_entries_wallet_id_id", "wallet_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    wallet_id: Mapped[int] = mapped_column(ForeignKey("wallets.id", ondelete="RESTRICT"))
    kind: Mapped[str] = mapped_column(String(20))
    amount: Mapped[int] = mapped_column(Integer)
    reference: Mapped[str] = mapped_column(String(120))
    # The top-up a card refund or dispute claws back from (for caps across both).
    payment_intent_id: Mapped[str | None] = mapped_column(String(255), index=True, default=None)
    purchase_id: Mapped[int | None] = mapped_column(
        ForeignKey("purchases.id", ondelete="RESTRICT"), default=None
    )
    note: Mapped[str | None] = mapped_column(String(300), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


PURCHASE_ACTIVE = PurchaseStatus.ACTIVE
PURCHASE_REFUNDED = PurchaseStatus.REFUNDED


class Purchase(Base):
    __tablename__ = "purchases"
    __table_args__ = (
        one_of("status", PurchaseStatus, name="status_known"),
        one_of("refunded_by", RefundedBy, name="refunded_by_known"),
        CheckConstraint("amount > 0", name="amount_positive"),
        # At most one active purchase of an article per reader.
        Index(
            "uq_purchases_active_user_article",
            "user_id",
            "article_id",
            unique=True,
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
        Index("ix_purchases_article_id_created_at", "article_id", "created_at"),
        # A reader's purchases, newest first, and the refund-limit count.
        Index("ix_purchases_user_id_id", "user_id", "id"),
        # What an agent token spent today (its daily limit).
        Index("ix_purchases_agent_token_id_created_at", "agent_token_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="RESTRICT"))
    wallet_id: Mapped[int] = mapped_column(ForeignKey("wallets.id", ondelete="RESTRICT"))
    amount: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16), default=PURCHASE_ACTIVE)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    refunded_at: Mapped[datetime | None] = mapped_column(default=None)
    refunded_by: Mapped[str | None] = mapped_column(String(16), default=None)
    # The agent token that bought it, if an agent did (kept if the token is deleted).
    agent_token_id: Mapped[int | None] = mapped_column(
        ForeignKey("api_tokens.id", ondelete="SET NULL"), default=None
    )

    # Read-only: a purchase's article, for listings that load it with the purchases.
    article: Mapped[Article] = relationship(viewonly=True)


class TopUp(Base):
    """A Stripe PaymentIntent that fills a wallet."""

    __tablename__ = "topups"
    __table_args__ = (
        UniqueConstraint("user_id", "idempotency_key"),
        one_of("status", TopUpStatus, name="status_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    payment_intent_id: Mapped[str | None] = mapped_column(String(255), unique=True, default=None)
    # Random, repeated in the PaymentIntent's metadata (dispatch_ref): a PaymentIntent
    # made by another deployment sharing the Stripe account cannot match it by chance,
    # as reader and top-up ids can. None for rows made for PaymentIntents without one.
    reference: Mapped[str | None] = mapped_column(String(32), unique=True, default=None)
    amount: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(32), default=TopUpStatus.REQUIRES_PAYMENT_METHOD)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), default=None)
    request_fingerprint: Mapped[str | None] = mapped_column(String(64), default=None)
    client_secret: Mapped[str | None] = mapped_column(String(255), default=None)
    buy_article_id: Mapped[int | None] = mapped_column(
        ForeignKey("articles.id", ondelete="SET NULL"), default=None
    )
    charge_id: Mapped[str | None] = mapped_column(String(255), default=None, index=True)
    # For the receipt: the card that paid, as Stripe reports it on the charge.
    card_brand: Mapped[str | None] = mapped_column(String(20), default=None)
    card_last4: Mapped[str | None] = mapped_column(String(4), default=None)
    # Stripe's fee for the charge, from its balance transaction: minor units of
    # fee_currency (the settlement currency). Written once, never overwritten.
    fee: Mapped[int | None] = mapped_column(Integer, default=None)
    fee_currency: Mapped[str | None] = mapped_column(String(3), default=None)
    fee_details: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, default=None)
    fee_recorded_at: Mapped[datetime | None] = mapped_column(default=None)
    failure_code: Mapped[str | None] = mapped_column(String(100), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    credited_at: Mapped[datetime | None] = mapped_column(default=None)
    buy_article: Mapped[Article | None] = relationship(viewonly=True)
    # The price the reader was shown for `buy_article` (in this top-up's currency): the
    # purchase on credit is made only at that price (issue 11, item 5).
    buy_expected_amount: Mapped[int | None] = mapped_column(Integer, default=None)
    # Stripe's cumulative `amount_refunded` of the charge, the largest seen: `audit`
    # checks that the wallet gave back at least this much of what was credited.
    amount_refunded: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # When Stripe was last asked about this top-up for a poll: at most once per few
    # seconds however often pages poll (claimed by a conditional UPDATE, see payments).
    checked_at: Mapped[datetime | None] = mapped_column(default=None)
    # Made by auto top-up (the saved card charged off-session when a purchase lacked
    # funds): counted against the reader's monthly auto top-up limit.
    auto: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class Dispute(Base):
    __tablename__ = "disputes"
    __table_args__ = (
        one_of("status", DisputeStatus, name="status_known"),
        one_of("outcome", DisputeOutcome, name="outcome_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    stripe_dispute_id: Mapped[str] = mapped_column(String(255), unique=True)
    wallet_id: Mapped[int] = mapped_column(ForeignKey("wallets.id", ondelete="RESTRICT"))
    payment_intent_id: Mapped[str] = mapped_column(String(255))
    charge_id: Mapped[str | None] = mapped_column(String(255), default=None)
    amount: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(32), default=DisputeStatus.OPEN)
    outcome: Mapped[str | None] = mapped_column(String(16), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(default=None)


class WebhookEvent(Base):
    """Every verified Stripe event, stored once by its id in the transaction of its effects."""

    __tablename__ = "webhook_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    stripe_event_id: Mapped[str] = mapped_column(String(255), unique=True)
    type: Mapped[str] = mapped_column(String(100))
    livemode: Mapped[bool] = mapped_column(default=False)
    outcome: Mapped[str] = mapped_column(String(40), default="processed")
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditAck(Base):
    """An operator's review of an anomaly `audit` reported: who, when and why.

    Append-only (the database refuses UPDATE and DELETE): the event stays as Stripe sent
    it, and `audit` lists it as acknowledged instead of failing on it.
    """

    __tablename__ = "audit_acks"
    __table_args__ = (
        CheckConstraint("length(acknowledged_by) > 0", name="acknowledged_by_not_empty"),
        CheckConstraint("length(note) > 0", name="note_not_empty"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    webhook_event_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_events.id", ondelete="RESTRICT"), unique=True
    )
    acknowledged_by: Mapped[str] = mapped_column(String(255))
    note: Mapped[str] = mapped_column(String(2000))
    acknowledged_at: Mapped[datetime] = mapped_column(default=utcnow)
