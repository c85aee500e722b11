"""The locked (teaser) and unlocked (full) views of an article are different schemas.

Only FullArticleSchema has a body field; nothing built from TeaserSchema can leak it.
"""

from __future__ import annotations

from typing import Any

from marshmallow import EXCLUDE, Schema, fields, validate

from dispatch_pay.api.openapi import ErrorSchema
from dispatch_pay.money import MoneySchema
from dispatch_pay.urls import absolute_url
from dispatch_pay.verification.manifests import corrections
from dispatch_pay.verification.schemas import (
    CorrectionSchema,
    ReportSchema,
    VerificationSummarySchema,
    full_report,
    summary,
)
from models import Article, ArticleRevision


def shown_revision(article: Article) -> ArticleRevision | None:
    """The text readers get: the live one, or for a never-published draft the newest."""
    return article.live_revision or article.latest_revision


class TeaserSchema(Schema):
    slug = fields.String()
    title = fields.String()
    teaser = fields.String()
    price = fields.Method("get_price", metadata={"schema": MoneySchema})
    published_at = fields.DateTime(allow_none=True)
    url = fields.Method("get_url", metadata={"type": "string", "format": "uri"})
    verification = fields.Method("get_verification", metadata={"schema": VerificationSummarySchema})

    def get_price(self, article: Article) -> dict[str, Any]:
        return {"amount": article.price_amount, "currency": article.price_currency}

    def get_url(self, article: Article) -> str:
        return absolute_url("catalog.article_page", slug=article.slug)

    def get_verification(self, article: Article) -> dict[str, Any]:
        revision = article.live_revision
        return summary(revision.report if revision is not None else None)


class FullArticleSchema(TeaserSchema):
    body = fields.Method(
        "get_body",
        metadata={
            "type": "string",
            "description": "The Markdown text; its UTF-8 SHA-256 is the manifest's `text_sha256`.",
        },
    )
    body_html = fields.Method("get_body_html", metadata={"type": "string"})
    verification = fields.Method("get_verification", metadata={"schema": ReportSchema})
    corrections = fields.Method("get_corrections", metadata={"schema": CorrectionSchema(many=True)})

    def get_body(self, article: Article) -> str:
        revision = shown_revision(article)
        return revision.body_markdown if revision is not None else ""

    def get_body_html(self, article: Article) -> str:
        revision = shown_revision(article)
        return revision.body_html if revision is not None else ""

    def get_corrections(self, article: Article) -> list[dict[str, Any]]:
        return corrections(article)

    def get_verification(self, article: Article) -> dict[str, Any]:
        revision = shown_revision(article)
        report = revision.report if revision is not None else None
        return full_report(report) or summary(None)


class ArticleListSchema(Schema):
    articles = fields.List(fields.Nested(TeaserSchema))
    page = fields.Integer()
    per_page = fields.Integer()
    next_page = fields.Integer(allow_none=True)


class PageQuerySchema(Schema):
    class Meta:
        # Links from newsletters and social sites add ?utm_source=… and the like.
        unknown = EXCLUDE

    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100_000))
    per_page = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))


class OfferSchema(Schema):
    price = fields.Nested(MoneySchema)
    purchase_url = fields.String()


class LockedArticleSchema(Schema):
    slug = fields.String()
    title = fields.String()
    teaser = fields.String()
    price = fields.Method("get_price", metadata={"schema": MoneySchema})

    def get_price(self, article: Article) -> dict[str, Any]:
        return {"amount": article.price_amount, "currency": article.price_currency}


class LibraryItemSchema(Schema):
    article = fields.Nested(TeaserSchema)
    acquired_at = fields.DateTime()
    source = fields.String()


# Re-exported for the OpenAPI document.
__all__ = [
    "ArticleListSchema",
    "FullArticleSchema",
    "LibraryItemSchema",
    "LockedArticleSchema",
    "OfferSchema",
    "PageQuerySchema",
    "ReportSchema",
    "TeaserSchema",
    "VerificationSummarySchema",
]


class GiftSchema(Schema):
    """A gift link as its giver sees it (GiftView)."""

    id = fields.Function(lambda v: v.gift.id, metadata={"type": "integer"})
    article = fields.Method("get_article", metadata={"type": "string"})
    url = fields.Method("get_url", metadata={"type": "string", "format": "uri"})
    reads_allowed = fields.Function(lambda v: v.gift.reads_allowed, metadata={"type": "integer"})
    reads_left = fields.Integer()
    revoked = fields.Function(lambda v: v.gift.revoked_at is not None, metadata={"type": "boolean"})
    created_at = fields.Function(
        lambda v: v.gift.created_at.isoformat(), metadata={"type": "string", "format": "date-time"}
    )

    def get_article(self, view: Any) -> str:
        return str(view.slug)

    def get_url(self, view: Any) -> str:
        return str(view.url)


class GiftEnvelopeSchema(Schema):
    gift = fields.Nested(GiftSchema)


class GiftListSchema(Schema):
    gifts = fields.List(fields.Nested(GiftSchema))


class PrivateFeedSchema(Schema):
    url = fields.String(metadata={"format": "uri"})


class LibrarySchema(Schema):
    articles = fields.List(fields.Nested(LibraryItemSchema), required=True)


class PaymentRequiredSchema(ErrorSchema):
    """402 for an article the reader does not own: an offer, and the teaser only."""

    offer = fields.Nested(OfferSchema, required=True)
    article = fields.Nested(LockedArticleSchema, required=True)
