"""The publisher's dashboard: thin routes over publisher, verification, sales and tokens.

Every page works without JavaScript: forms post back, previews render on the server,
and the revenue chart is inline SVG. Domain rules live in the services these call.
"""

from __future__ import annotations

import json
from typing import Any

from flask import (
    Blueprint,
    Response,
    flash,
    get_flashed_messages,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from marshmallow import Schema, ValidationError
from werkzeug.wrappers import Response as BaseResponse

from dispatch_pay.accounts import services as accounts
from dispatch_pay.catalog.markdown import normalise_text, render_markdown
from dispatch_pay.catalog.services import find_article
from dispatch_pay.errors import DomainError
from dispatch_pay.extensions import login_manager
from dispatch_pay.inputs import flat_messages, form_errors
from dispatch_pay.money import CURRENCIES
from dispatch_pay.publisher import sales, services
from dispatch_pay.publisher.api import csv_response
from dispatch_pay.publisher.chart import revenue_chart
from dispatch_pay.publisher.schemas import (
    ArticleFormSchema,
    BulkPriceFormSchema,
    PriceFormSchema,
    SalesQuerySchema,
    TokenFormSchema,
)
from dispatch_pay.verification.manifests import manifest_chain, manifest_document
from dispatch_pay.verification.schemas import ReportInputSchema, full_report, summary_line
from dispatch_pay.verification.services import attach_report, verification_state
from models import STATUS_WITHDRAWN, Article, User

bp = Blueprint("publisher", __name__, url_prefix="/publisher")

Page = str | tuple[str, int] | BaseResponse
REPORT_MAX_BYTES = 512 * 1024


@bp.before_request
def _publishers_only() -> BaseResponse | None:
    """Anonymous visitors log in first; readers get the 403 page."""
    if not current_user.is_authenticated:
        response: BaseResponse = login_manager.unauthorized()
        return response
    if not current_user.is_publisher:
        raise DomainError(
            "forbidden", "The dashboard is for the publication's editors.", status=403
        )
    return None


def _me() -> User:
    user: User = current_user._get_current_object()
    return user


def _form(schema: Schema, data: Any) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Load a form through its schema: (data, {}) or ({}, errors per field)."""
    try:
        return schema.load(data), {}
    except ValidationError as exc:
        return {}, form_errors(exc)


# --- the articles table -------------------------------------------------------------


@bp.get("")
def dashboard() -> Page:
    articles = services.list_articles()
    figures = sales.figures_by_article(None)
    period = sales.default_period()
    daily = sales.daily_net(period)
    return render_template(
        "publisher/dashboard.html",
        articles=articles,
        states={a.id: verification_state(a) for a in articles},
        summaries={
            a.id: summary_line(a.latest_revision.report if a.latest_revision else None)
            for a in articles
        },
        figures=figures,
        default_price=services.default_price(),
        currencies=sorted(CURRENCIES),
        period=period,
        charts=[(c, revenue_chart(days, c)) for c, days in daily.items()],
        bulk_errors={},
        default_errors={},
    )


@bp.post("/prices")
def bulk_price() -> Page:
    form = {**request.form.to_dict(), "articles": request.form.getlist("articles")}
    data, errors = _form(BulkPriceFormSchema(), form)
    if errors:
        flash("Prices not changed: " + "; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        return redirect(url_for(".dashboard"))
    changed = services.set_prices(data["articles"], data["amount"], data["currency"], _me())
    noun = "article" if len(changed) == 1 else "articles"
    flash(f"New price set for {len(changed)} {noun}.")
    return redirect(url_for(".dashboard"))


@bp.post("/default-price")
def default_price() -> Page:
    data, errors = _form(PriceFormSchema(), request.form.to_dict())
    if errors:
        flash("Default price not changed: " + " ".join(m for v in errors.values() for m in v))
        return redirect(url_for(".dashboard"))
    services.set_default_price(data["amount"], data["currency"], _me())
    flash("Default price for new articles saved.")
    return redirect(url_for(".dashboard"))


# --- one article: write, preview, price, verify, publish -----------------------------


@bp.route("/articles/new", methods=["GET", "POST"])
def new_article() -> Page:
    values = request.form.to_dict() if request.method == "POST" else {}
    preview = _preview(values)
    if request.method == "GET" or request.form.get("action") == "preview":
        return _editor(None, values, {}, preview)
    data, errors = _form(ArticleFormSchema(), values)
    if errors:
        return _editor(None, values, errors, preview), 422
    try:
        article = services.create_article(_me(), data)
    except DomainError as exc:
        return _editor(None, values, exc.fields or {"_schema": [exc.message]}, preview), exc.status
    flash("Draft saved. Attach the verifier's report, then publish.")
    return redirect(url_for(".article", slug=article.slug))


def _preview(values: dict[str, str]) -> str | None:
    body = values.get("body", "")
    return render_markdown(normalise_text(body)) if body.strip() else None


def _editor(
    article: Article | None,
    values: dict[str, str],
    errors: dict[str, list[str]],
    preview: str | None,
) -> str:
    return render_template(
        "publisher/editor.html",
        article=article,
        values=values,
        errors=errors,
        preview=preview,
        default_price=services.default_price(),
    )


@bp.get("/articles/<slug>")
def article(slug: str) -> Page:
    flashed: list[tuple[str, Any]] = get_flashed_messages(True, REFUSALS)  # type: ignore[assignment]
    refused = dict(flashed)
    return _article_page(
        find_article(slug),
        report_errors=refused.get("report_errors"),
        price_errors=refused.get("price_errors"),
        publish_error=refused.get("publish_error"),
    )


# A refused form on the article page is flashed and redirected to (POST, redirect, GET):
# the browser never stays on a POST-only URL that a reload would submit again.
REFUSALS = ["report_errors", "price_errors", "publish_error"]


FLASHED_MESSAGES, FLASHED_CHARS = 10, 300


def _refused(article: Article, category: str, detail: Any, anchor: str) -> BaseResponse:
    """Flash the refusal and redirect to the article's page, at the form that was refused.

    The flash travels in the session cookie: a report with thousands of faults is cut to
    its first few messages, so the cookie stays far below the 4 KB browsers keep.
    """
    if isinstance(detail, dict):
        items = [
            (k, m[:FLASHED_CHARS]) for k, v in sorted(detail.items()) for m in flat_messages(v)
        ]
        detail = {}
        for key, message in items[:FLASHED_MESSAGES]:
            detail.setdefault(key, []).append(message)
        if len(items) > FLASHED_MESSAGES:
            detail.setdefault("_schema", []).append(
                f"{len(items) - FLASHED_MESSAGES} more problems are not listed here."
            )
    else:
        detail = str(detail)[:FLASHED_CHARS]
    flash(detail, category)
    return redirect(url_for(".article", slug=article.slug, _anchor=anchor))


def _article_page(
    article: Article,
    *,
    report_errors: dict[str, list[str]] | None = None,
    price_errors: dict[str, list[str]] | None = None,
    publish_error: str | None = None,
) -> str:
    latest = article.latest_revision
    blocker = services.publish_blocker(article)
    return render_template(
        "publisher/article.html",
        article=article,
        state=verification_state(article),
        report=full_report(latest.report if latest else None),
        blocker=blocker,
        blocked_claims=blocker.extra.get("claims", []) if blocker else [],
        publish_error=publish_error,
        revisions=services.revisions(article),
        history=services.price_history(article),
        currencies=sorted(CURRENCIES),
        report_errors=report_errors or {},
        price_errors=price_errors or {},
        manifests=manifest_chain(article),
    )


@bp.get("/articles/<slug>/manifests/<int:sequence>.json")
def download_manifest(slug: str, sequence: int) -> Response:
    """One signed manifest of the chain, as the file anyone can check."""
    article = find_article(slug)
    manifest = next((m for m in manifest_chain(article) if m.sequence == sequence), None)
    if manifest is None:
        raise DomainError("not_found", "No such manifest.", status=404)
    name = f"{article.slug}-manifest-{sequence}.json"
    return Response(
        json.dumps(manifest_document(manifest), indent=2, sort_keys=True),
        mimetype="application/json",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@bp.route("/articles/<slug>/edit", methods=["GET", "POST"])
def edit_article(slug: str) -> Page:
    article = find_article(slug)
    if request.method == "GET":
        latest = article.latest_revision
        values = {
            "title": article.title,
            "slug": article.slug,
            "teaser": article.teaser,
            "body": latest.body_markdown if latest else "",
        }
        return _editor(article, values, {}, _preview(values))
    values = request.form.to_dict()
    preview = _preview(values)
    if request.form.get("action") == "preview":
        return _editor(article, values, {}, preview)
    data, errors = _form(ArticleFormSchema(), values)
    if errors:
        return _editor(article, values, errors, preview), 422
    try:
        services.update_article(article, data, _me())
    except DomainError as exc:
        fields = exc.fields or {"_schema": [exc.message]}
        return _editor(article, values, fields, preview), exc.status
    flash("Saved.")
    return redirect(url_for(".article", slug=article.slug))


@bp.post("/articles/<slug>/price")
def set_price(slug: str) -> Page:
    article = find_article(slug)
    data, errors = _form(PriceFormSchema(), request.form.to_dict())
    if errors:
        if request.form.get("next") == "dashboard":
            flash(f"Price of '{article.title}' not changed: " + " ".join(flat_messages(errors)))
            return redirect(url_for(".dashboard"))
        return _refused(article, "price_errors", errors, "price")
    if services.set_price(article, data["amount"], data["currency"], _me()):
        flash(f"Price of '{article.title}' changed. Past purchases keep what they paid.")
    if request.form.get("next") == "dashboard":
        return redirect(url_for(".dashboard"))
    return redirect(url_for(".article", slug=article.slug))


ANCHOR = "verification"


@bp.post("/articles/<slug>/verification")
def attach_verification(slug: str) -> Page:
    article = find_article(slug)
    text = _report_text()
    try:
        payload = json.loads(text) if text.strip() else None
    except ValueError as exc:
        return _refused(article, "report_errors", {"report": [f"Not valid JSON: {exc}"]}, ANCHOR)
    if not isinstance(payload, dict):
        errors = {"report": ["Paste the report's JSON object, or choose a .json file."]}
        return _refused(article, "report_errors", errors, ANCHOR)
    data, errors = _form(ReportInputSchema(), payload)
    if errors:
        return _refused(article, "report_errors", errors, ANCHOR)
    try:
        attach_report(article, data)
    except DomainError as exc:
        return _refused(article, "report_errors", {"report": [exc.message]}, ANCHOR)
    if article.status == STATUS_WITHDRAWN:
        flash(
            "Report attached. It finds a contradicted claim in the live text: the article "
            "is off sale until a corrected text is checked and published."
        )
    else:
        flash("Report attached to the current text.")
    return redirect(url_for(".article", slug=article.slug))


def _report_text() -> str:
    """The pasted JSON, or the uploaded file's when one was chosen."""
    upload = request.files.get("report_file")
    if upload is not None and upload.filename:
        raw = upload.read(REPORT_MAX_BYTES + 1)
        if len(raw) > REPORT_MAX_BYTES:
            return ""
        return raw.decode("utf-8", errors="replace")
    return request.form.get("report_json", "")


@bp.post("/articles/<slug>/publish")
def publish(slug: str) -> Page:
    article = find_article(slug)
    try:
        services.publish(article)
    except DomainError as exc:
        return _refused(article, "publish_error", exc.message, "publishing")
    flash(f"'{article.title}' is live.")
    return redirect(url_for(".article", slug=article.slug))


@bp.post("/articles/<slug>/unpublish")
def unpublish(slug: str) -> Page:
    article = services.unpublish(find_article(slug))
    flash(f"'{article.title}' is no longer listed. Buyers keep reading what they bought.")
    return redirect(url_for(".article", slug=article.slug))


# --- sales --------------------------------------------------------------------------


@bp.get("/sales")
def sales_page() -> Page:
    data, errors = _form(SalesQuerySchema(), request.args.to_dict())
    period = data["period"] if not errors else sales.default_period()
    report = sales.sales_report(period)
    if not errors and data["format"] == "csv":
        return csv_response(sales.report_csv(report), period)
    return render_template(
        "publisher/sales.html",
        report=report,
        data=sales.report_data(report),
        charts=[(c, revenue_chart(days, c)) for c, days in report.daily.items()],
        errors=errors,
        values=request.args,
    ), (422 if errors else 200)


# --- API tokens for the pipeline ----------------------------------------------------


@bp.get("/tokens")
def tokens() -> Page:
    return _tokens_page()


def _tokens_page(
    *, secret: str | None = None, errors: dict[str, list[str]] | None = None, status: int = 200
) -> BaseResponse:
    html = render_template(
        "publisher/tokens.html",
        tokens=accounts.list_tokens(_me()),
        secret=secret,
        errors=errors or {},
    )
    response = Response(html, status=status, mimetype="text/html")
    if secret:
        response.headers["Cache-Control"] = "no-store"  # the secret is shown once
    return response


@bp.post("/tokens")
def create_token() -> Page:
    data, errors = _form(TokenFormSchema(), request.form.to_dict())
    if errors:
        return _tokens_page(errors=errors, status=422)
    issued = accounts.issue_token(_me(), data["name"].strip())
    return _tokens_page(secret=issued.secret, status=201)


@bp.post("/tokens/<int:token_id>/revoke")
def revoke_token(token_id: int) -> Page:
    token = accounts.revoke_token(_me(), token_id)
    flash(f"Token '{token.name}' revoked; the pipeline can no longer use it.")
    return redirect(url_for(".tokens"))
