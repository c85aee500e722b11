"""What readers control themselves: gift links, their private feed, spending limits,
auto top-up and the card saved for it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow

DEFAULT_GIFT_READS = 3


class GiftLink(Base):
    """A link that lets a few people read one article in full; only the token's SHA-256 is kept."""

    __tablename__ = "gift_links"
    __table_args__ = (CheckConstraint("reads_allowed >= 0", name="reads_allowed_not_negative"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    article_id: Mapped[int] = mapped_column(
        ForeignKey("articles.id", ondelete="CASCADE"), index=True
    )
    giver_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # The token is HMAC(SECRET_KEY, nonce): the owner can see the link again, while a
    # copy of the database alone neither holds nor yields it. Lookups go by its SHA-256.
    nonce: Mapped[str] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # Fixed when the link is made: a later change of the publisher's number does not
    # take reads away from (or add reads to) links already given.
    reads_allowed: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class GiftRead(Base):
    """One person who opened a gift link: a reader, or a browser identified by a random key."""

    __tablename__ = "gift_reads"
    __table_args__ = (UniqueConstraint("gift_id", "visitor"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    gift_id: Mapped[int] = mapped_column(ForeignKey("gift_links.id", ondelete="CASCADE"))
    article_id: Mapped[int] = mapped_column(
        ForeignKey("articles.id", ondelete="CASCADE"), index=True
    )
    # "user:<id>" for a logged-in reader, "anon:<random>" for a browser without an account.
    visitor: Mapped[str] = mapped_column(String(80))
    reader_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PrivateFeed(Base):
    """The secret of a reader's private full-text feed; a new secret replaces the old one."""

    __tablename__ = "private_feeds"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    nonce: Mapped[str] = mapped_column(String(64))  # the secret is HMAC(SECRET_KEY, nonce)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WalletSettings(Base):
    """Limits a reader sets on their own spending."""

    __tablename__ = "wallet_settings"
    __table_args__ = (
        CheckConstraint("daily_cap_amount >= 0", name="daily_cap_not_negative"),
        CheckConstraint(
            "(daily_cap_amount IS NULL) = (daily_cap_currency IS NULL)", name="daily_cap_whole"
        ),
        CheckConstraint(
            "auto_topup_below >= 0 AND auto_topup_amount > 0 "
            "AND auto_topup_monthly_limit >= auto_topup_amount",
            name="auto_topup_amounts",
        ),
        CheckConstraint(
            "(auto_topup_currency IS NULL) = (auto_topup_amount IS NULL) "
            "AND (auto_topup_currency IS NULL) = (auto_topup_below IS NULL) "
            "AND (auto_topup_currency IS NULL) = (auto_topup_monthly_limit IS NULL)",
            name="auto_topup_whole",
        ),
    )

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    # At most this much spent on purchases per UTC day, in this currency; None: no cap.
    daily_cap_amount: Mapped[int | None] = mapped_column(Integer, default=None)
    daily_cap_currency: Mapped[str | None] = mapped_column(String(3), default=None)
    # Auto top-up (all four set, or none): when a purchase lacks funds, the saved card is
    # charged off-session `auto_topup_amount` (more if the purchase needs more, so that
    # at least `auto_topup_below` is left after it), at most `auto_topup_monthly_limit`
    # per calendar month (UTC), all in `auto_topup_currency`.
    auto_topup_below: Mapped[int | None] = mapped_column(Integer, default=None)
    auto_topup_amount: Mapped[int | None] = mapped_column(Integer, default=None)
    auto_topup_monthly_limit: Mapped[int | None] = mapped_column(Integer, default=None)
    auto_topup_currency: Mapped[str | None] = mapped_column(String(3), default=None)
    # Why auto top-up was switched off by the app (a declined charge), until set again.
    auto_topup_disabled_reason: Mapped[str | None] = mapped_column(String(100), default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class StripeCustomer(Base):
    """The reader's Stripe Customer (made once, when the reader first pays or saves a
    card) and the card saved on it for off-session top-ups.

    A payment method the reader sends is only ever used with this Customer: Stripe
    refuses one attached to another Customer, and `payment_method_id` is unique here.
    """

    __tablename__ = "stripe_customers"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    customer_id: Mapped[str] = mapped_column(String(255), unique=True)
    payment_method_id: Mapped[str | None] = mapped_column(String(255), unique=True, default=None)
    card_brand: Mapped[str | None] = mapped_column(String(20), default=None)
    card_last4: Mapped[str | None] = mapped_column(String(4), default=None)
    card_saved_at: Mapped[datetime | None] = mapped_column(default=None)
    # A SetupIntent that waits for the reader (3-D Secure), and the card it is for.
    pending_setup_intent_id: Mapped[str | None] = mapped_column(String(255), default=None)
    pending_payment_method_id: Mapped[str | None] = mapped_column(String(255), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
