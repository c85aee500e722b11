from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, pre_load, validate

from dispatch_pay.api.openapi import ErrorSchema
from dispatch_pay.catalog.schemas import TeaserSchema
from dispatch_pay.inputs import not_blank
from dispatch_pay.money import CURRENCIES, MAX_ARTICLE_PRICE, MajorUnits, MoneySchema, PriceSchema
from dispatch_pay.publisher.sales import (
    DEFAULT_PERIOD_DAYS,
    MAX_PERIOD_DAYS,
    Period,
    default_period,
)
from dispatch_pay.verification.schemas import ClaimOutSchema, ReportSchema, full_report
from dispatch_pay.verification.services import verification_state
from models import Article

SLUG_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
BODY_MAX_LENGTH = 200_000


MAX_GIFT_READS = 100


class ArticleCreateSchema(Schema):
    title = fields.String(required=True, validate=[validate.Length(min=1, max=200), not_blank])
    slug = fields.String(
        validate=[
            validate.Length(min=1, max=120),
            validate.Regexp(
                SLUG_PATTERN, error="Use lowercase letters, digits and single hyphens."
            ),
        ]
    )
    teaser = fields.String(required=True, validate=[validate.Length(min=1, max=2000), not_blank])
    body = fields.String(
        required=True, validate=[validate.Length(min=1, max=BODY_MAX_LENGTH), not_blank]
    )
    # Required: the contract lists `price` without the `?` it gives `slug`, and a pipeline
    # that forgot it must not publish at a price nobody chose.
    price = fields.Nested(PriceSchema, required=True)
    # How many people one reader's gift link lets read it; null: the site's number.
    gift_reads = fields.Integer(
        allow_none=True, validate=validate.Range(min=0, max=MAX_GIFT_READS), strict=True
    )


class ArticlePatchSchema(ArticleCreateSchema):
    """Every field optional; only those sent change.

    Partial by field name, not `partial=True`: that would reach into the nested price
    and accept {"amount": 39} without a currency.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("partial", ("title", "slug", "teaser", "body", "price", "gift_reads"))
        super().__init__(**kwargs)


# Partial at the top level only: a price that is sent is a whole price (amount and
# currency), so `partial=True`, which reaches into nested schemas too, would be wrong.
PATCHABLE_FIELDS = tuple(ArticlePatchSchema._declared_fields)


class AdminVerificationSchema(Schema):
    """The publisher's view: whether the newest text is checked, and the report if any."""

    state = fields.String(metadata={"enum": ["current", "stale", "missing"]})
    report = fields.Nested(ReportSchema, allow_none=True)


class ArticleAdminSchema(TeaserSchema):
    gift_reads = fields.Integer(allow_none=True)
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


# --- Sales: GET /api/v1/publisher/sales and the dashboard's sales page -------------


# Far enough for any sales history, and far from date.min/max (a day past those overflows).
DATE_RANGE = (date(2000, 1, 1), date(2999, 12, 31))


class SalesQuerySchema(Schema):
    """?from=YYYY-MM-DD&to=YYYY-MM-DD&format=json|csv; both days included, UTC.

    Without dates: the last 30 days up to today. With only one: a 30-day period
    starting (from) or ending (to) there.
    """

    class Meta:
        unknown = EXCLUDE

    start = fields.Date(data_key="from", load_default=None, validate=validate.Range(*DATE_RANGE))
    end = fields.Date(data_key="to", load_default=None, validate=validate.Range(*DATE_RANGE))
    format = fields.String(load_default="json", validate=validate.OneOf(["json", "csv"]))

    @post_load
    def fill_period(self, data: dict[str, Any], **_: object) -> dict[str, Any]:
        start, end = data["start"], data["end"]
        span = timedelta(days=DEFAULT_PERIOD_DAYS - 1)
        if start is None and end is None:
            period = default_period()
            start, end = period.start, period.end
        elif start is None:
            start = end - span
        elif end is None:
            end = start + span
        if start > end:
            raise ValidationError("Must not be after 'to'.", field_name="from")
        if (end - start).days + 1 > MAX_PERIOD_DAYS:
            raise ValidationError(f"At most {MAX_PERIOD_DAYS} days.", field_name="to")
        data["period"] = Period(start, end)
        return data


class PeriodSchema(Schema):
    from_ = fields.Date(data_key="from", attribute="from")
    to = fields.Date()


class SalesFiguresSchema(Schema):
    purchases = fields.Integer(metadata={"description": "Purchases made in the period."})
    refunds = fields.Integer(metadata={"description": "Purchases refunded in the period."})
    gift_reads = fields.Integer(
        metadata={"description": "People who read it through a reader's gift link in the period."}
    )
    gross = fields.List(fields.Nested(MoneySchema), metadata={"description": "Per currency."})
    refunded = fields.List(fields.Nested(MoneySchema), metadata={"description": "Per currency."})
    net = fields.List(fields.Nested(MoneySchema), metadata={"description": "Gross - refunded."})


class ArticleSalesSchema(SalesFiguresSchema):
    slug = fields.String()
    title = fields.String()


class TopUpSalesSchema(Schema):
    count = fields.Integer()
    received = fields.List(fields.Nested(MoneySchema))
    stripe_fees = fields.List(
        fields.Nested(MoneySchema),
        metadata={
            "description": "Fees Stripe reported, per the currency it charged them in "
            "(its settlement currency, which may differ from the top-ups')."
        },
    )
    stripe_fees_unknown = fields.Integer(
        metadata={"description": "Top-ups whose Stripe fee is not known."}
    )


class DailyNetSchema(Schema):
    date = fields.Date()
    net = fields.Nested(MoneySchema)


class SalesReportSchema(Schema):
    period = fields.Nested(PeriodSchema)
    articles = fields.List(fields.Nested(ArticleSalesSchema))
    total = fields.Nested(SalesFiguresSchema)
    topups = fields.Nested(TopUpSalesSchema)
    daily = fields.List(fields.Nested(DailyNetSchema))


# --- Dashboard forms (HTML): prices are typed in major units, e.g. "0.39" ------------


class PriceFormSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    amount = MajorUnits(
        required=True,
        data_key="price",
        validate=validate.Range(
            min=0, max=MAX_ARTICLE_PRICE, error="Must be between 0 and 100.00."
        ),
    )
    currency = fields.String(
        required=True,
        validate=validate.OneOf(sorted(CURRENCIES), error="Supported currencies: {choices}."),
    )


class BulkPriceFormSchema(PriceFormSchema):
    articles = fields.List(
        fields.String(validate=validate.Length(min=1, max=120)),
        required=True,
        validate=validate.Length(min=1, max=500, error="Select at least one article."),
    )


class ArticleFormSchema(ArticleCreateSchema):
    """The dashboard's article form; an empty slug means 'derive it from the title'.

    The price is set with its own form (and the history it writes), not here.
    """

    class Meta:
        unknown = EXCLUDE
        exclude = ("price",)

    @pre_load
    def drop_empty_slug(self, data: dict[str, Any], **_: object) -> dict[str, Any]:
        data = dict(data)
        if not str(data.get("slug", "")).strip():
            data.pop("slug", None)
        return data


class TokenFormSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    name = fields.String(required=True, validate=validate.Length(min=1, max=100))


class PublicationSettingsSchema(Schema):
    gift_reads = fields.Integer(
        required=True, validate=validate.Range(min=0, max=MAX_GIFT_READS), strict=True
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
