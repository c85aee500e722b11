"""Articles and the library as JSON."""

from __future__ import annotations

from flask import Response, jsonify, request

from dispatch_pay.accounts.auth import api_blueprint, api_user, require_user
from dispatch_pay.api.openapi import operation
from dispatch_pay.catalog import gifts, private_feed, services
from dispatch_pay.catalog.full_text import full_json
from dispatch_pay.catalog.gate import Access, read_access
from dispatch_pay.catalog.owner_reads import mark_rendered
from dispatch_pay.catalog.public_cache import mark_public
from dispatch_pay.catalog.schemas import (
    ArticleListSchema,
    FullArticleSchema,
    GiftEnvelopeSchema,
    GiftListSchema,
    LibrarySchema,
    PageQuerySchema,
    PaymentRequiredSchema,
    PrivateFeedSchema,
)
from dispatch_pay.catalog.text_view import MARKDOWN_TYPE, article_markdown
from dispatch_pay.errors import DomainError, not_found
from dispatch_pay.inputs import load_query
from dispatch_pay.urls import absolute_url
from dispatch_pay.verification.manifests import live_manifest, manifest_document
from dispatch_pay.verification.schemas import SignedManifestSchema

bp = api_blueprint("catalog_api", __name__)
# Built once (their construction does not depend on the request); dumping is thread-safe.
ARTICLE_LIST = ArticleListSchema()
FULL = FullArticleSchema()
PAGE_QUERY = PageQuerySchema()
LIBRARY = LibrarySchema()
GIFT = GiftEnvelopeSchema()
GIFTS = GiftListSchema()
FEED = PrivateFeedSchema()
SIGNED_MANIFEST = SignedManifestSchema()


@bp.get("/articles")
@operation(
    "Published articles, newest first (teasers only)",
    auth="optional",
    query=PageQuerySchema,
    response=ArticleListSchema,
)
def list_articles() -> Response:
    query = load_query(PAGE_QUERY)
    if api_user() is None:
        mark_public()
    articles, more = services.list_published(query["page"], query["per_page"])
    return jsonify(
        ARTICLE_LIST.dump(
            {
                "articles": articles,
                "page": query["page"],
                "per_page": query["per_page"],
                "next_page": query["page"] + 1 if more else None,
            }
        )
    )


@bp.get("/articles/<slug>")
@operation(
    "An article in full for a reader entitled to it, else a 402 offer",
    auth="optional",
    response=FullArticleSchema,
    description="The full text (`body_html`) is in no field of the 402. With "
    "`Accept: text/markdown` the full text is answered as Markdown (a short front matter, "
    "then the exact body). Every 402 carries the offer as an x402 v2 `PAYMENT-REQUIRED` "
    "header (base64 JSON, scheme `dispatch-wallet`).",
    error_bodies={402: PaymentRequiredSchema},
    errors={402: "`payment_required`: buy it at `offer.purchase_url`."},
)
def get_article(slug: str) -> Response:
    markdown = wants_markdown()
    try:
        read = services.readable_article(api_user(), slug)
    except DomainError as exc:
        if exc.status == 402 and api_user() is None:
            # The 402 holds the teaser and the offer, nothing of the caller; it is the same
            # whatever the client accepts, so it carries no `Vary: Accept` and stays cacheable.
            mark_public()
        raise
    if markdown:
        response = Response(article_markdown(read.article), mimetype=MARKDOWN_TYPE)
    else:
        response = Response(full_json(read), mimetype="application/json")
        mark_rendered(request.environ)
    response.vary.add("Accept")
    return response


def wants_markdown() -> bool:
    best = request.accept_mimetypes.best_match(["application/json", MARKDOWN_TYPE])
    return best == MARKDOWN_TYPE


@bp.get("/articles/<slug>/manifest")
@operation(
    "The signed verification manifest of the text readers get now",
    auth="optional",
    response=SignedManifestSchema,
    description="Hashes and counts only, signed as a compact JWS (EdDSA) with a key "
    "published at `/.well-known/dispatch-keys.json`. An article taken off sale answers "
    "404 to everyone but its buyers (and publishers).",
    errors={404: "`not_found`: unknown, never published, or off sale."},
)
def get_manifest(slug: str) -> Response:
    article = services.find_article(slug)
    viewer = api_user()
    # The read gate decides who may see the article at all; a teaser reader may see
    # its manifest (hashes and counts are no part of what is sold).
    if read_access(viewer, article) is Access.HIDDEN:
        raise not_found("article")
    manifest = live_manifest(article)
    if manifest is None:
        raise not_found("article")
    if viewer is None and article.is_published:
        mark_public()
    return jsonify(SIGNED_MANIFEST.dump(manifest_document(manifest)))


@bp.get("/library")
@operation("The reader's purchased (and granted) articles", response=LibrarySchema)
def library() -> Response:
    user = require_user()
    items = services.library(user)
    return jsonify(LIBRARY.dump({"articles": items}))


@bp.post("/articles/<slug>/gifts")
@operation(
    "Make a gift link: up to N people read the article in full without buying",
    response=GiftEnvelopeSchema,
    status=201,
    description="N is the publisher's number (3 unless changed for the site or the article). "
    "`url` is a secret: anyone holding it may read while reads are left.",
    errors={
        403: "`forbidden`: only a reader who owns the article gives it.",
        409: "`not_giftable`: the article is free or not published.",
    },
)
def create_gift(slug: str) -> tuple[Response, int]:
    user = require_user()
    view = gifts.create_gift(user, services.find_article(slug))
    return jsonify(GIFT.dump({"gift": view})), 201


@bp.get("/articles/<slug>/gifts")
@operation("The caller's gift links of this article, with the reads left", response=GiftListSchema)
def list_gifts(slug: str) -> Response:
    user = require_user()
    return jsonify(GIFTS.dump({"gifts": gifts.gifts_of(user, services.find_article(slug))}))


@bp.delete("/gifts/<int:gift_id>")
@operation(
    "Revoke a gift link: nobody new reads through it",
    response=GiftEnvelopeSchema,
    errors={404: "`not_found`: no such gift of the caller's."},
)
def revoke_gift(gift_id: int) -> Response:
    user = require_user()
    view = gifts.revoke_gift(user, gift_id)
    return jsonify(GIFT.dump({"gift": view}))


def _feed_url(secret: str) -> str:
    return absolute_url("catalog.private_feed_xml", secret=secret)


@bp.get("/me/feed")
@operation(
    "The caller's private feed: RSS 2.0 of their library with the full texts",
    response=PrivateFeedSchema,
    description="The URL is a secret; `POST` makes a new one and the old URL stops working.",
)
def get_feed() -> Response:
    user = require_user()
    return jsonify(FEED.dump({"url": _feed_url(private_feed.feed_secret(user))}))


@bp.post("/me/feed")
@operation("Make a new private feed URL; the old one stops working", response=PrivateFeedSchema)
def renew_feed() -> Response:
    user = require_user()
    return jsonify(FEED.dump({"url": _feed_url(private_feed.new_feed_secret(user))}))
