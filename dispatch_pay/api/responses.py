"""Response bodies of the JSON API that wrap the capability schemas.

The routes dump through these, and the OpenAPI document describes them, so what a
client is told and what it gets come from the same class. `required=True` on an
output field documents that the key is always present (marshmallow ignores it on dump).
"""

from __future__ import annotations

from marshmallow import Schema, fields

from dispatch_pay.accounts.schemas import ReaderSchema, TokenSchema
from dispatch_pay.api.openapi import ErrorSchema
from dispatch_pay.catalog.schemas import (
    FullArticleSchema,
    LibraryItemSchema,
    LockedArticleSchema,
    OfferSchema,
)
from dispatch_pay.money import MoneySchema
from dispatch_pay.publisher.schemas import ArticleAdminSchema, RevisionSchema
from dispatch_pay.verification.schemas import ClaimOutSchema, ReportSchema
from dispatch_pay.wallet.schemas import PurchaseSchema, TopUpSchema


class UserSchema(ReaderSchema):
    role = fields.String(required=True, metadata={"enum": ["reader", "publisher"]})


class MeSchema(Schema):
    user = fields.Nested(UserSchema, required=True)


class TokenListSchema(Schema):
    tokens = fields.List(fields.Nested(TokenSchema), required=True)


class TokenRevokedSchema(Schema):
    token_details = fields.Nested(TokenSchema, required=True)


class LibrarySchema(Schema):
    articles = fields.List(fields.Nested(LibraryItemSchema), required=True)


class PaymentRequiredSchema(ErrorSchema):
    """402 for an article the reader does not own: an offer, and the teaser only."""

    offer = fields.Nested(OfferSchema, required=True)
    article = fields.Nested(LockedArticleSchema, required=True)


class BalanceSchema(Schema):
    balance = fields.Nested(MoneySchema, required=True)


class TopUpOfferSchema(Schema):
    minimum = fields.Nested(MoneySchema, required=True)
    maximum = fields.Nested(MoneySchema, required=True)
    presets = fields.List(fields.Nested(MoneySchema), required=True)


class InsufficientFundsSchema(ErrorSchema):
    """402 for a purchase the wallet does not cover: what is missing, what to top up."""

    shortfall = fields.Nested(MoneySchema, required=True)
    wallet = fields.Nested(BalanceSchema, required=True)
    topup = fields.Nested(TopUpOfferSchema, required=True)


class PurchaseResultSchema(Schema):
    purchase = fields.Nested(PurchaseSchema, required=True)
    wallet = fields.Nested(BalanceSchema, required=True)
    article = fields.Nested(
        FullArticleSchema,
        metadata={"description": "with `?include=article`: the full article as GET answers it"},
    )


class PurchaseListSchema(Schema):
    purchases = fields.List(fields.Nested(PurchaseSchema), required=True)


class TopUpCreatedSchema(Schema):
    topup = fields.Nested(TopUpSchema, required=True)


class TopUpStatusSchema(TopUpCreatedSchema):
    purchased = fields.Boolean(
        required=True,
        allow_none=True,
        metadata={
            "description": "whether the article named by `buy` is now owned; "
            "null when the top-up buys nothing"
        },
    )


class AdminArticleListSchema(Schema):
    articles = fields.List(fields.Nested(ArticleAdminSchema), required=True)


class RevisionListSchema(Schema):
    revisions = fields.List(fields.Nested(RevisionSchema), required=True)


class StoredReportSchema(ReportSchema):
    revision = fields.Integer(required=True, metadata={"description": "the revision checked"})


class PublishBlockedSchema(ErrorSchema):
    """409 from publish; `claims` lists the contradicted claims when that is the reason."""

    claims = fields.List(fields.Nested(ClaimOutSchema))
