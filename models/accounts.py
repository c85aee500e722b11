"""Readers, publishers and their API tokens."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, one_of, utcnow

ROLE_READER = "reader"
ROLE_PUBLISHER = "publisher"

# Deleted accounts get `deleted-<id>` at this reserved domain (RFC 2606): never mailed.
DELETED_EMAIL_DOMAIN = "@invalid"


class User(Base):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint("role IN ('reader', 'publisher')", name="role_known"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # Stored lower-cased, so uniqueness holds regardless of case on every backend.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default=ROLE_READER)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    tokens: Mapped[list[ApiToken]] = relationship(back_populates="user")

    @property
    def is_publisher(self) -> bool:
        return self.role == ROLE_PUBLISHER

    @property
    def is_deleted(self) -> bool:
        """A deleted account keeps its row (the ledger points at it); its email is erased."""
        return self.email.endswith(DELETED_EMAIL_DOMAIN)

    # flask-login's user protocol
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_active(self) -> bool:
        return True

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        return str(self.id)


class TokenKind(StrEnum):
    """A reader's own token acts as the reader; an agent token only lists, reads and buys."""

    READER = "reader"
    AGENT = "agent"


class ApiToken(Base):
    """A bearer token; only its SHA-256 is stored, the secret is shown once.

    Agent tokens carry a budget in one currency: the most one article may cost, and the
    most the token may spend per UTC day.
    """

    __tablename__ = "api_tokens"
    __table_args__ = (
        one_of("kind", TokenKind, name="kind_known"),
        CheckConstraint(
            "kind = 'reader' OR (max_price_amount >= 0 AND daily_limit_amount >= 0"
            " AND budget_currency IS NOT NULL)",
            name="agent_budget_set",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    kind: Mapped[str] = mapped_column(
        String(16), default=TokenKind.READER, server_default=TokenKind.READER.value
    )
    max_price_amount: Mapped[int | None] = mapped_column(Integer, default=None)
    daily_limit_amount: Mapped[int | None] = mapped_column(Integer, default=None)
    budget_currency: Mapped[str | None] = mapped_column(String(3), default=None)

    user: Mapped[User] = relationship(back_populates="tokens")

    @property
    def is_agent(self) -> bool:
        return self.kind == TokenKind.AGENT


class UserSession(Base):
    """A browser login. The cookie carries a random secret; only its SHA-256 is stored.

    Deleting the row ends the session on the server (logout, "log out everywhere",
    password change or reset), whatever copies of the cookie exist."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    user_agent: Mapped[str] = mapped_column(String(255), default="")
    address: Mapped[str] = mapped_column(String(64), default="")

    user: Mapped[User] = relationship()


LINK_SIGN_IN = "sign_in"
LINK_PASSWORD_RESET = "password_reset"  # noqa: S105 - a link purpose, not a secret
LINK_EMAIL_CHANGE = "email_change"


class AccountLink(Base):
    """A mailed one-time link (sign-in, password reset, email change); only its hash is kept.

    Bound to the address it was mailed to: a sign-in link for an address without an
    account (user_id NULL) creates the account when the reader confirms it."""

    __tablename__ = "account_links"
    __table_args__ = (
        CheckConstraint(
            "purpose IN ('sign_in', 'password_reset', 'email_change')", name="purpose_known"
        ),
        Index("ix_account_links_email_created", "email", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    purpose: Mapped[str] = mapped_column(String(20))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(254))
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), default=None, index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column(default=None)
