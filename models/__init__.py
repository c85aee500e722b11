"""SQLAlchemy models and the `db` object. Nothing here imports dispatch_pay."""

from models.accounts import ROLE_PUBLISHER, ROLE_READER, ApiToken, User
from models.base import Base, Database, db, utcnow
from models.catalog import (
    STATUS_DRAFT,
    STATUS_PUBLISHED,
    VERDICTS,
    Article,
    ArticleRevision,
    Entitlement,
    VerificationReport,
)
from models.publisher import PriceChange, PublicationSettings
from models.wallet import (
    ENTRY_ADJUSTMENT,
    ENTRY_DISPUTE,
    ENTRY_PURCHASE,
    ENTRY_REFUND,
    ENTRY_TOPUP,
    ENTRY_TOPUP_REFUNDED,
    PURCHASE_ACTIVE,
    PURCHASE_REFUNDED,
    Dispute,
    LedgerEntry,
    Purchase,
    TopUp,
    Wallet,
    WebhookEvent,
)

__all__ = [
    "ENTRY_ADJUSTMENT",
    "ENTRY_DISPUTE",
    "ENTRY_PURCHASE",
    "ENTRY_REFUND",
    "ENTRY_TOPUP",
    "ENTRY_TOPUP_REFUNDED",
    "PURCHASE_ACTIVE",
    "PURCHASE_REFUNDED",
    "ROLE_PUBLISHER",
    "ROLE_READER",
    "STATUS_DRAFT",
    "STATUS_PUBLISHED",
    "VERDICTS",
    "ApiToken",
    "Article",
    "ArticleRevision",
    "Base",
    "Database",
    "Dispute",
    "Entitlement",
    "LedgerEntry",
    "PriceChange",
    "PublicationSettings",
    "Purchase",
    "TopUp",
    "User",
    "VerificationReport",
    "Wallet",
    "WebhookEvent",
    "db",
    "utcnow",
]
