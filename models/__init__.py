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

__all__ = [
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
    "Entitlement",
    "User",
    "VerificationReport",
    "db",
    "utcnow",
]
