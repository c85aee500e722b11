"""The publishing API: the pipeline writes, verifies and publishes through these routes."""

from __future__ import annotations

from flask import Response, jsonify

from dispatch_pay.accounts.auth import api_blueprint, require_publisher
from dispatch_pay.api.openapi import operation
from dispatch_pay.catalog.services import find_article
from dispatch_pay.inputs import load_json, load_query
from dispatch_pay.publisher import sales, services
from dispatch_pay.publisher.schemas import (
    PATCHABLE_FIELDS,
    AdminArticleListSchema,
    ArticleAdminSchema,
    ArticleCreateSchema,
    ArticlePatchSchema,
    PublicationSettingsSchema,
    PublishBlockedSchema,
    RevisionListSchema,
    SalesQuerySchema,
    SalesReportSchema,
    StoredReportSchema,
)
from dispatch_pay.verification.schemas import ReportInputSchema, full_report
from dispatch_pay.verification.services import attach_report

bp = api_blueprint("publisher_api", __name__)


@bp.post("/articles")
@operation(
    "Create a draft article",
    auth="publisher",
    body=ArticleCreateSchema,
    response=ArticleAdminSchema,
    status=201,
    errors={409: "`slug_taken`."},
)
def create_article() -> tuple[Response, int]:
    author = require_publisher()
    data = load_json(ArticleCreateSchema())
    article = services.create_article(author, data)
    return jsonify(ArticleAdminSchema().dump(article)), 201


@bp.patch("/articles/<slug>")
@operation(
    "Edit an article; a new body becomes a new revision",
    auth="publisher",
    body=ArticlePatchSchema(partial=PATCHABLE_FIELDS),
    response=ArticleAdminSchema,
    description="Only the fields sent change. Price changes never touch past purchases.",
    errors={409: "`slug_taken`, or `slug_locked` once published."},
)
def update_article(slug: str) -> Response:
    editor = require_publisher()
    article = find_article(slug)
    data = load_json(ArticlePatchSchema())
    services.update_article(article, data, editor)
    return jsonify(ArticleAdminSchema().dump(article))


@bp.put("/articles/<slug>/verification")
@operation(
    "Attach the verifier's report to the text it checked",
    auth="publisher",
    body=ReportInputSchema,
    response=StoredReportSchema,
    description="The report binds to the newest text, or to the live text when "
    "`body_sha256` names it. A report for the live text replaces the live report: the "
    "change is signed into the article's manifest chain and listed in its `corrections`; "
    "with a contradicted claim the article leaves the catalog at once (its buyers keep "
    "it) until a text that passes the gate is published.",
    errors={
        409: "`verification_missing` (no text), `verification_stale` (`body_sha256` "
        "is neither the newest nor the live text's).",
        422: "`invalid_fields` (duplicated claims, a verdict outside the four, a source "
        "URL that is not http(s), `checked_at` in the future), `quote_not_found` (a "
        "`quote` that is not a passage of the text).",
    },
)
def put_verification(slug: str) -> Response:
    require_publisher()
    article = find_article(slug)
    data = load_json(ReportInputSchema())
    report = attach_report(article, data)
    return jsonify(
        StoredReportSchema().dump(
            {**(full_report(report) or {}), "revision": report.revision.number}
        )
    )


@bp.post("/articles/<slug>/publish")
@operation(
    "Publish the newest text, if its report is current and contradicts nothing",
    auth="publisher",
    response=ArticleAdminSchema,
    error_bodies={409: PublishBlockedSchema},
    errors={
        409: "`contradicted_claims` (listed in `claims`), `verification_missing` or "
        "`verification_stale`."
    },
)
def publish(slug: str) -> Response:
    require_publisher()
    article = services.publish(find_article(slug))
    return jsonify(ArticleAdminSchema().dump(article))


@bp.post("/articles/<slug>/unpublish")
@operation("Take an article off the site", auth="publisher", response=ArticleAdminSchema)
def unpublish(slug: str) -> Response:
    require_publisher()
    article = services.unpublish(find_article(slug))
    return jsonify(ArticleAdminSchema().dump(article))


@bp.get("/publisher/articles")
@operation("Every article, drafts too", auth="publisher", response=AdminArticleListSchema)
def list_all_articles() -> Response:
    require_publisher()
    return jsonify(AdminArticleListSchema().dump({"articles": services.list_articles()}))


@bp.get("/publisher/articles/<slug>")
@operation("One article as the publisher sees it", auth="publisher", response=ArticleAdminSchema)
def get_admin_article(slug: str) -> Response:
    require_publisher()
    return jsonify(ArticleAdminSchema().dump(find_article(slug)))


@bp.get("/articles/<slug>/revisions")
@operation("An article's revisions, newest first", auth="publisher", response=RevisionListSchema)
def list_revisions(slug: str) -> Response:
    require_publisher()
    article = find_article(slug)
    rows = [
        {
            "number": r.number,
            "body_sha256": r.body_sha256,
            "created_at": r.created_at,
            "live": r.id == article.live_revision_id,
            "verified": r.report is not None,
        }
        for r in services.revisions(article)
    ]
    return jsonify(RevisionListSchema().dump({"revisions": rows}))


@bp.put("/publisher/settings")
@operation(
    "Publication settings: how many people one reader's gift link lets read an article",
    auth="publisher",
    body=PublicationSettingsSchema,
    response=PublicationSettingsSchema,
    description="An article's own `gift_reads` (PATCH the article) wins over this number; "
    "links already given keep the number they were made with.",
)
def put_settings() -> Response:
    user = require_publisher()
    data = load_json(PublicationSettingsSchema())
    settings = services.set_gift_reads(data["gift_reads"], user)
    return jsonify(PublicationSettingsSchema().dump(settings))


@bp.get("/publisher/sales")
@operation(
    "Sales per article and in total over a period (JSON, or CSV with ?format=csv)",
    auth="publisher",
    query=SalesQuerySchema,
    response=SalesReportSchema,
    media_types=("text/csv",),
)
def sales_report() -> Response:
    require_publisher()
    query = load_query(SalesQuerySchema())
    report = sales.sales_report(query["period"])
    if query["format"] == "csv":
        return csv_response(sales.report_csv(report), query["period"])
    return jsonify(SalesReportSchema().dump(sales.report_data(report)))


def csv_response(text: str, period: sales.Period) -> Response:
    name = f"sales-{period.start.isoformat()}-{period.end.isoformat()}.csv"
    return Response(
        text,
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
