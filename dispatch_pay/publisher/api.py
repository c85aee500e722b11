"""The publishing API: the pipeline writes, verifies and publishes through these routes."""

from __future__ import annotations

from flask import Response, jsonify

from dispatch_pay.api.auth import api_blueprint, require_publisher
from dispatch_pay.catalog.services import find_article
from dispatch_pay.inputs import load_json, load_query
from dispatch_pay.publisher import sales, services
from dispatch_pay.publisher.schemas import (
    ArticleAdminSchema,
    ArticleCreateSchema,
    ArticlePatchSchema,
    RevisionSchema,
    SalesQuerySchema,
    SalesReportSchema,
)
from dispatch_pay.verification.schemas import ReportInputSchema, full_report
from dispatch_pay.verification.services import attach_report

bp = api_blueprint("publisher_api", __name__)


@bp.post("/articles")
def create_article() -> tuple[Response, int]:
    author = require_publisher()
    data = load_json(ArticleCreateSchema())
    article = services.create_article(author, data)
    return jsonify(ArticleAdminSchema().dump(article)), 201


@bp.patch("/articles/<slug>")
def update_article(slug: str) -> Response:
    editor = require_publisher()
    article = find_article(slug)
    data = load_json(ArticlePatchSchema())
    services.update_article(article, data, editor)
    return jsonify(ArticleAdminSchema().dump(article))


@bp.put("/articles/<slug>/verification")
def put_verification(slug: str) -> Response:
    require_publisher()
    article = find_article(slug)
    data = load_json(ReportInputSchema())
    report = attach_report(article, data)
    return jsonify({**(full_report(report) or {}), "revision": report.revision.number})


@bp.post("/articles/<slug>/publish")
def publish(slug: str) -> Response:
    require_publisher()
    article = services.publish(find_article(slug))
    return jsonify(ArticleAdminSchema().dump(article))


@bp.post("/articles/<slug>/unpublish")
def unpublish(slug: str) -> Response:
    require_publisher()
    article = services.unpublish(find_article(slug))
    return jsonify(ArticleAdminSchema().dump(article))


@bp.get("/publisher/articles")
def list_all_articles() -> Response:
    require_publisher()
    return jsonify({"articles": ArticleAdminSchema(many=True).dump(services.list_articles())})


@bp.get("/publisher/articles/<slug>")
def get_admin_article(slug: str) -> Response:
    require_publisher()
    return jsonify(ArticleAdminSchema().dump(find_article(slug)))


@bp.get("/articles/<slug>/revisions")
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
    return jsonify({"revisions": RevisionSchema(many=True).dump(rows)})


@bp.get("/publisher/sales")
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
