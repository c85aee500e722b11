from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from dispatch_pay.catalog.schemas import TeaserSchema
from dispatch_pay.money import PriceSchema
from dispatch_pay.verification.schemas import ReportSchema, full_report
from dispatch_pay.verification.services import verification_state
from models import Article

SLUG_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
BODY_MAX_LENGTH = 200_000


class ArticleCreateSchema(Schema):
    title = fields.String(required=True, validate=validate.Length(min=1, max=200))
    slug = fields.String(
        validate=[
            validate.Length(min=1, max=120),
            validate.Regexp(
                SLUG_PATTERN, error="Use lowercase letters, digits and single hyphens."
            ),
        ]
    )
    teaser = fields.String(required=True, validate=validate.Length(min=1, max=2000))
    body = fields.String(required=True, validate=validate.Length(min=1, max=BODY_MAX_LENGTH))
    price = fields.Nested(PriceSchema)


class ArticlePatchSchema(ArticleCreateSchema):
    """Every field optional; only those sent change."""


# Partial at the top level only: a price that is sent is a whole price (amount and
# currency), so `partial=True`, which reaches into nested schemas too, would be wrong.
PATCHABLE_FIELDS = tuple(ArticlePatchSchema._declared_fields)


class AdminVerificationSchema(Schema):
    """The publisher's view: whether the newest text is checked, and the report if any."""

    state = fields.String(metadata={"enum": ["current", "stale", "missing"]})
    report = fields.Nested(ReportSchema, allow_none=True)


class ArticleAdminSchema(TeaserSchema):
    status = fields.String()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    body = fields.Method("get_body", metadata={"type": "string"})
    body_sha256 = fields.Method("get_body_sha256", metadata={"type": ["string", "null"]})
    latest_revision = fields.Method("get_latest_revision", metadata={"type": ["integer", "null"]})
    live_revision = fields.Method("get_live_revision", metadata={"type": ["integer", "null"]})
    verification = fields.Method("get_verification", metadata={"schema": AdminVerificationSchema})

    def get_body(self, article: Article) -> str:
        return article.latest_revision.body_markdown if article.latest_revision else ""

    def get_body_sha256(self, article: Article) -> str | None:
        return article.latest_revision.body_sha256 if article.latest_revision else None

    def get_latest_revision(self, article: Article) -> int | None:
        return article.latest_revision.number if article.latest_revision else None

    def get_live_revision(self, article: Article) -> int | None:
        return article.live_revision.number if article.live_revision else None

    def get_verification(self, article: Article) -> dict[str, Any]:
        latest = article.latest_revision
        return {
            "state": verification_state(article),
            "report": full_report(latest.report if latest else None),
        }


class RevisionSchema(Schema):
    number = fields.Integer()
    body_sha256 = fields.String()
    created_at = fields.DateTime()
    live = fields.Boolean()
    verified = fields.Boolean()
