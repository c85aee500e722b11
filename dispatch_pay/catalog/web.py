"""Reader-facing pages: the front page, article pages, library, feed and sitemap."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_required
from markupsafe import Markup, escape
from werkzeug.wrappers import Response as WerkzeugResponse

from dispatch_pay.catalog import gifts, private_feed, services
from dispatch_pay.catalog.full_text import FullPage, cached_render, full_page, origin
from dispatch_pay.catalog.gate import Access, entitled_article_ids, read_access
from dispatch_pay.catalog.owner_pages import keep_shell, shell_key
from dispatch_pay.catalog.paywall import paywall_offer
from dispatch_pay.catalog.public_cache import mark_public
from dispatch_pay.catalog.schemas import FullArticleSchema, PageQuerySchema, TeaserSchema
from dispatch_pay.catalog.text_view import llms_txt
from dispatch_pay.errors import DomainError
from dispatch_pay.extensions import limiter
from dispatch_pay.inputs import load_query
from dispatch_pay.urls import absolute_url
from dispatch_pay.verification.manifests import corrections
from dispatch_pay.verification.marking import VERDICT_SIGNS, claim_reviews, mark_quotes
from dispatch_pay.verification.notices import library_notices
from dispatch_pay.verification.snippet import check_program
from models import STATUS_WITHDRAWN, Article, User

bp = Blueprint("catalog", __name__)

PAYWALL_SELECTOR = ".paywalled-content"
# Built once: a schema's construction (copying its declared fields) does not depend on
# the request. Dumping through a shared instance is safe across threads.
TEASER = TeaserSchema()
TEASERS = TeaserSchema(many=True)
FULL = FullArticleSchema()
PAGE_QUERY = PageQuerySchema()


def _viewer() -> User | None:
    return current_user._get_current_object() if current_user.is_authenticated else None


@bp.get("/")
def front_page() -> str:
    query = load_query(PAGE_QUERY)
    articles, more = services.list_published(query["page"], 12)
    viewer = _viewer()
    if viewer is None:
        mark_public()
    owned = entitled_article_ids(viewer, [a.id for a in articles])
    return render_template(
        "index.html",
        articles=TEASERS.dump(articles),
        owned={a.slug for a in articles if a.id in owned},
        page=query["page"],
        next_page=query["page"] + 1 if more else None,
    )


def structured_data(teaser: dict[str, Any], free: bool) -> dict[str, Any]:
    """schema.org NewsArticle built from the teaser only; never carries the body."""
    data: dict[str, Any] = {
        "@context": "https://schema.org",
        "@type": "NewsArticle",
        "headline": teaser["title"],
        "description": teaser["teaser"],
        "url": teaser["url"],
        "datePublished": teaser["published_at"],
        "isAccessibleForFree": free,
        "publisher": {"@type": "Organization", "name": "Dispatch"},
    }
    if not free:
        data["hasPart"] = {
            "@type": "WebPageElement",
            "isAccessibleForFree": False,
            "cssSelector": PAYWALL_SELECTOR,
        }
    return data


@bp.get("/articles/<slug>")
def article_page(slug: str) -> str:
    viewer = _viewer()
    read = services.article_with_holdings(viewer, slug)
    article = read.article
    access = read_access(viewer, article, holdings=read.holdings)
    if access is Access.HIDDEN:
        abort(404)
    if viewer is None and access is Access.TEASER:
        mark_public()
    if access is not Access.FULL:
        return _render_article(article, viewer, full_text=False)
    extra: dict[str, Any] = {}
    if viewer is not None and not article.is_free:
        gave = read.holdings is None or read.holdings.gave_gifts
        extra = {
            "gifts": gifts.gifts_of(viewer, article) if gave else [],
            "can_give": gifts.may_give(viewer, article, holdings=read.holdings),
        }
    page = full_page(read)
    text = cached_render("page-text", read, lambda: _full_text(page, article))
    html = _render_full(page, article, text, **extra)
    if viewer is not None and not extra.get("gifts"):
        shown = article.live_revision_id or article.latest_revision_id
        can_give = bool(extra.get("can_give"))
        keep_shell(html, shell_key(viewer, can_give, article.id, shown, read.version, origin()))
    return html


def _render_article(article: Article, viewer: User | None, *, full_text: bool, **extra: Any) -> str:
    """The article page (and the gift page): the teaser, or the full text for those who may read."""
    if full_text:
        # The gift page: rendered for its holder only, outside the shared render cache.
        teaser = TEASER.dump(article)
        full = FULL.dump(article)
        report = full["verification"]
        body, marked = mark_quotes(full["body_html"], report.get("claims") or [])
        review = None
        if report.get("claims"):
            review = claim_reviews(report, teaser["url"], teaser["published_at"])
        page = FullPage(teaser, full, body, marked, review)
        return _render_full(page, article, _full_text(page, article), **extra)
    teaser = TEASER.dump(article)
    # Two templates: the locked one is never handed the full article.
    return render_template(
        "article_teaser.html",
        structured_data=structured_data(teaser, article.is_free),
        offer=paywall_offer(viewer, article),
        corrections=corrections(article),
        **_common(teaser, article, extra),
    )


def _common(teaser: dict[str, Any], article: Article, extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "article": teaser,
        "free": article.is_free,
        "published": article.is_published,
        "withdrawn": article.status == STATUS_WITHDRAWN,
        "paywall_class": PAYWALL_SELECTOR.lstrip("."),
        **extra,
    }


def _full_text(page: FullPage, article: Article) -> Markup:
    """The text and its Verifier section, corrections and manifest link (nothing of the
    reader: the owner's page keeps it per revision and catalog version)."""
    html = render_template(
        "_full_text.html",
        full=page.full,
        body=page.body,
        marked=page.marked,
        signs=VERDICT_SIGNS,
        corrections=page.full["corrections"],
        **_common(page.teaser, article, {}),
    )
    return Markup(html)  # noqa: S704 - the output of an autoescaping template


def _render_full(page: FullPage, article: Article, text: Markup, **extra: Any) -> str:
    data = structured_data(page.teaser, article.is_free)
    if page.review is not None:
        # ClaimReview only here: the claims are part of what is sold.
        data["review"] = page.review
    return render_template(
        "article_full.html",
        full=page.full,
        full_text=text,
        structured_data=data,
        **_common(page.teaser, article, extra),
    )


# Guessing secrets in URLs: every unknown token counts against the address.
GUESSING_LIMIT = "20 per minute; 200 per hour"


def _unknown_secret(response: Response) -> bool:
    return response.status_code == 404


ANON_KEY = "gift_visitor"


def _anonymous_key() -> str:
    """A random key per browser, so one person opening a gift twice counts once."""
    key = session.get(ANON_KEY)
    if not isinstance(key, str) or len(key) != 32:
        key = secrets.token_hex(16)
        session[ANON_KEY] = key
    return key


@bp.get("/gift/<token>")
@limiter.limit(GUESSING_LIMIT, deduct_when=_unknown_secret)
def gift_page(token: str) -> Response:
    return _gift_response(token, claim=False)


@bp.post("/gift/<token>")
@limiter.limit(GUESSING_LIMIT, deduct_when=_unknown_secret)
def claim_gift(token: str) -> WerkzeugResponse:
    """The reader takes one of the link's reads, then reads it on the gift page."""
    _gift_response(token, claim=True)
    return redirect(url_for("catalog.gift_page", token=token), code=303)


def _gift_response(token: str, *, claim: bool) -> Response:
    viewer = _viewer()
    try:
        opening = gifts.open_gift(token, viewer, "" if viewer else _anonymous_key(), claim=claim)
    except DomainError as exc:
        if exc.status == 404:
            abort(404)
        raise
    full_text = opening.access is Access.FULL
    notice = "full" if full_text else ("claim" if opening.can_claim else "used")
    body = _render_article(
        opening.article,
        viewer,
        full_text=full_text,
        gift_notice=notice,
        gift_token=token,
        noindex=True,
    )
    response = make_response(body)
    # A gift page is for its holder only: never stored by a shared (or any) cache.
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    response.headers["Referrer-Policy"] = "no-referrer"  # the token must not leak onwards
    return response


def _rss_date(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")


@bp.get("/feed/<secret>.xml")
@limiter.limit(GUESSING_LIMIT, deduct_when=_unknown_secret)
def private_feed_xml(secret: str) -> Response:
    try:
        reader = private_feed.reader_for_secret(secret)
    except DomainError as exc:
        if exc.status == 404:
            abort(404)
        raise
    content = private_feed.feed_items(reader)
    items = []
    for item in content.items:
        full = FULL.dump(item.article)
        summary = escape(full["verification"]["summary"])
        html = f'{full["body_html"]}<p class="verification">Verification: {summary}</p>'
        items.append({"article": full, "html": html, "date": _rss_date(item.acquired_at)})
    body = render_template(
        "private_feed.xml",
        items=items,
        home=absolute_url("catalog.library_page"),
        self_url=absolute_url("catalog.private_feed_xml", secret=secret),
    )
    response = Response(body, mimetype="application/rss+xml")
    # The reader's own text: no shared cache may keep it; their reader app revalidates.
    response.headers["Cache-Control"] = "private, no-cache"
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    response.set_etag(hashlib.sha256(body.encode()).hexdigest())
    if content.last_modified is not None:
        response.last_modified = content.last_modified
    response.make_conditional(request)
    return response


@bp.post("/articles/<slug>/gifts")
@login_required
def give_article(slug: str) -> WerkzeugResponse:
    gifts.create_gift(current_user._get_current_object(), services.find_article(slug))
    return redirect(url_for("catalog.article_page", slug=slug, _anchor="gifts"))


@bp.post("/gifts/<int:gift_id>/revoke")
@login_required
def revoke_gift(gift_id: int) -> WerkzeugResponse:
    view = gifts.revoke_gift(current_user._get_current_object(), gift_id)
    return redirect(url_for("catalog.article_page", slug=view.slug, _anchor="gifts"))


@bp.get("/library")
@login_required
def library_page() -> str:
    reader = current_user._get_current_object()
    items = services.library(reader)
    notices = library_notices(reader)
    return render_template(
        "library.html",
        items=[
            {
                "article": TEASER.dump(i.article),
                "acquired_at": i.acquired_at,
                "source": i.source,
                "notices": notices.get(i.article.id, []),
                "withdrawn": i.article.status == STATUS_WITHDRAWN,
            }
            for i in items
        ],
    )


@bp.app_context_processor
def _private_feed_in_templates() -> dict[str, Any]:
    """The feed address for /library and /account (accounts sits below the catalog, so the
    account page gets it from here); asked only by the pages that show it."""

    def private_feed_url() -> str:
        secret = private_feed.feed_secret(current_user._get_current_object())
        return absolute_url("catalog.private_feed_xml", secret=secret)

    return {"private_feed_url": private_feed_url}


# Where "make a new address" comes back to: a fixed set of pages, never a URL from the form.
FEED_PAGES = {"library": "catalog.library_page", "account": "accounts.account_page"}


@bp.post("/library/feed")
@login_required
def renew_feed() -> WerkzeugResponse:
    private_feed.new_feed_secret(current_user._get_current_object())
    page = FEED_PAGES.get(request.form.get("return_to", ""), FEED_PAGES["library"])
    return redirect(url_for(page, _anchor="private-feed"))


@bp.get("/verification")
def verification_page() -> str:
    if _viewer() is None:
        mark_public()
    site = absolute_url("catalog.front_page")
    return render_template("verification.html", snippet=check_program(site))


@bp.get("/feed.xml")
def feed() -> Response:
    mark_public()  # teasers only, nothing about the caller
    articles, _ = services.list_published(1, 50)
    body = render_template(
        "feed.xml",
        items=[
            (
                TEASER.dump(a),
                a.published_at.strftime("%a, %d %b %Y %H:%M:%S +0000") if a.published_at else None,
            )
            for a in articles
        ],
        home=absolute_url("catalog.front_page"),
        self_url=absolute_url("catalog.feed"),
    )
    return Response(body, mimetype="application/rss+xml")


@bp.get("/sitemap.xml")
def sitemap() -> Response:
    mark_public()
    articles = services.all_published()
    body = render_template(
        "sitemap.xml",
        pages=[
            absolute_url("catalog.front_page"),
            absolute_url("catalog.verification_page"),
        ],
        articles=[
            (absolute_url("catalog.article_page", slug=a.slug), a.updated_at) for a in articles
        ],
    )
    return Response(body, mimetype="application/xml")


@bp.get("/llms.txt")
def llms() -> Response:
    mark_public()  # teasers, prices and verdict counts: the same for everyone
    body = llms_txt(current_app.config["SITE_NAME"], services.all_published())
    return Response(body, mimetype="text/plain")


@bp.get("/robots.txt")
def robots() -> Response:
    mark_public()
    body = (
        "User-agent: *\n"
        "Allow: /\n"
        "Disallow: /wallet\n"
        "Disallow: /library\n"
        "Disallow: /account\n"
        "Disallow: /gift/\n"
        "Disallow: /feed/\n"
        "Disallow: /publisher\n"
        f"\nSitemap: {absolute_url('catalog.sitemap')}\n"
    )
    return Response(body, mimetype="text/plain")
