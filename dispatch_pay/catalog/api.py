"""Articles and the library as JSON."""

from __future__ import annotations

from flask import Response, jsonify

from dispatch_pay.accounts.auth import api_blueprint, api_user, require_user
from dispatch_pay.api.openapi import operation
from dispatch_pay.catalog import services
from dispatch_pay.catalog.gate import Access, read_access
from dispatch_pay.catalog.public_cache import mark_public
from dispatch_pay.catalog.schemas import (
    ArticleListSchema,
    FullArticleSchema,
    LibrarySchema,
    LockedArticleSchema,
    OfferSchema,
    PageQuerySchema,
    PaymentRequiredSchema,
)
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
LOCKED = LockedArticleSchema()
OFFER = OfferSchema()
LIBRARY = LibrarySchema()
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
    description="The full text (`body_html`) is in no field of the 402.",
    error_bodies={402: PaymentRequiredSchema},
    errors={402: "`payment_required`: buy it at `offer.purchase_url`."},
)
def get_article(slug: str) -> Response:
    article = services.find_article(slug)
    access = read_access(api_user(), article)
    if access is Access.HIDDEN:
        raise not_found("article")
    if access is Access.FULL:
        return jsonify(FULL.dump(article))
    if api_user() is None:
        mark_public()  # the 402 answer holds the teaser and the offer, nothing of the caller
    raise DomainError(
        "payment_required",
        "Buy this dispatch to read it in full.",
        status=402,
        extra={
            "offer": OFFER.dump(
                {
                    "price": {"amount": article.price_amount, "currency": article.price_currency},
                    "purchase_url": absolute_url("wallet_api.purchase_article", slug=article.slug),
                }
            ),
            "article": LOCKED.dump(article),
        },
    )


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
