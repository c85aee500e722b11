"""Reader-facing pages: the front page, article pages, library, feed and sitemap."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, render_template
from flask_login import current_user, login_required

from dispatch_pay.catalog import services
from dispatch_pay.catalog.gate import Access, entitled_article_ids, read_access
from dispatch_pay.catalog.paywall import paywall_offer
from dispatch_pay.catalog.public_cache import mark_public
from dispatch_pay.catalog.schemas import FullArticleSchema, PageQuerySchema, TeaserSchema
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
    article: Article = services.find_article(slug)
    viewer = _viewer()
    access = read_access(viewer, article)
    if access is Access.HIDDEN:
        abort(404)
    if viewer is None and access is Access.TEASER:
        mark_public()
    teaser = TEASER.dump(article)
    if access is not Access.FULL:
        # Two templates: the locked one is never handed the full article.
        return render_template(
            "article_teaser.html",
            article=teaser,
            free=article.is_free,
            published=article.is_published,
            withdrawn=article.status == STATUS_WITHDRAWN,
            structured_data=structured_data(teaser, article.is_free),
            paywall_class=PAYWALL_SELECTOR.lstrip("."),
            offer=paywall_offer(viewer, article),
            corrections=corrections(article),
        )
    full = FULL.dump(article)
    report = full["verification"]
    body, marked = mark_quotes(full["body_html"], report.get("claims") or [])
    data = structured_data(teaser, article.is_free)
    if report.get("claims"):
        # ClaimReview only here: the claims are part of what is sold.
        data["review"] = claim_reviews(report, teaser["url"], teaser["published_at"])
    return render_template(
        "article_full.html",
        article=teaser,
        full=full,
        body=body,
        marked=marked,
        free=article.is_free,
        published=article.is_published,
        withdrawn=article.status == STATUS_WITHDRAWN,
        structured_data=data,
        paywall_class=PAYWALL_SELECTOR.lstrip("."),
        corrections=full["corrections"],
        signs=VERDICT_SIGNS,
    )


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
                "notices": notices.get(i.article.id, []),
                "withdrawn": i.article.status == STATUS_WITHDRAWN,
            }
            for i in items
        ],
    )


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
