"""Signed manifests: every published state of an article, chained by hash.

A manifest holds hashes and counts only (never a claim, a quote or a word of the
body), so it is public: anyone can check that a text and a report they were given are
the ones the site published, and that the site's history of an article was only ever
appended to.
"""

from __future__ import annotations

import hashlib
from typing import Any

import rfc8785
from sqlalchemy import select

from dispatch_pay.verification.notices import announce_correction
from dispatch_pay.verification.schemas import full_report
from dispatch_pay.verification.signing import sign_compact
from models import (
    STATUS_PUBLISHED,
    Article,
    ArticleRevision,
    Manifest,
    VerificationReport,
    db,
    utcnow,
)


def canonical_json(value: Any) -> bytes:
    """RFC 8785 (JCS): sorted keys, no whitespace, UTF-8, numbers as ECMAScript prints them."""
    return bytes(rfc8785.dumps(value))


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def report_sha256(report: VerificationReport) -> str:
    """The hash of the `verification` object exactly as the full article JSON carries it."""
    return sha256_hex(canonical_json(full_report(report)))


def _verdicts(report: VerificationReport) -> dict[str, int]:
    return {
        "supported": report.supported_count,
        "weak": report.weak_count,
        "unverified": report.unverified_count,
        "contradicted": report.contradicted_count,
    }


def lock_article(article: Article) -> None:
    """Serialise everything that decides what readers of this article get.

    Publishing, attaching a report and appending to the manifest chain each take the
    article's row lock first and then read the article and its reports afresh, so a
    publish racing a contradicted report either sees the report (and refuses) or
    happens first (and the report then withdraws it). A no-op on SQLite, which
    serialises writers itself.
    """
    # Fetching the rows is what refreshes the objects already in the session.
    db.session.scalars(
        select(Article)
        .where(Article.id == article.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()
    db.session.scalars(
        select(VerificationReport)
        .join(ArticleRevision, VerificationReport.revision_id == ArticleRevision.id)
        .where(ArticleRevision.article_id == article.id)
        .execution_options(populate_existing=True)
    ).all()


def latest_manifest(article: Article) -> Manifest | None:
    return db.session.scalar(
        select(Manifest)
        .where(Manifest.article_id == article.id)
        .order_by(Manifest.sequence.desc())
        .limit(1)
    )


def record_manifest(article: Article, revision: ArticleRevision, change: str) -> Manifest:
    """Sign the state readers now get and append it to the article's chain."""
    report = revision.report
    if report is None:  # the publish gate never lets a text without a report go live
        raise ValueError("a published revision always has a report")
    lock_article(article)
    previous = latest_manifest(article)
    issued_at = utcnow()
    payload = {
        "article": article.slug,
        "revision": revision.number,
        "text_sha256": revision.body_sha256,
        "report_sha256": report_sha256(report),
        "verdicts": _verdicts(report),
        "verifier": report.verifier,
        "checked_at": report.checked_at.isoformat(),
        "published_at": issued_at.isoformat(),
        "previous": previous.jws_sha256 if previous is not None else None,
    }
    compact, kid = sign_compact(canonical_json(payload))
    manifest = Manifest(
        article_id=article.id,
        sequence=previous.sequence + 1 if previous is not None else 1,
        revision_id=revision.id,
        payload=payload,
        jws=compact,
        jws_sha256=sha256_hex(compact.encode("ascii")),
        kid=kid,
        change=change[:300],
        created_at=issued_at,
    )
    db.session.add(manifest)
    db.session.flush()
    if manifest.sequence > 1:
        announce_correction(article, manifest)
    return manifest


def record_publication(
    article: Article, was_status: str, was_live_revision_id: int | None
) -> Manifest | None:
    """A manifest for a publish that changed what readers get (none for a repeated publish)."""
    revision = article.live_revision
    assert revision is not None
    if was_status == STATUS_PUBLISHED and was_live_revision_id == revision.id:
        return None
    if latest_manifest(article) is None:
        change = f"Published (revision {revision.number})."
    elif was_live_revision_id != revision.id:
        change = f"Revision {revision.number} published: the text changed."
    else:
        change = f"Back on sale (revision {revision.number})."
    return record_manifest(article, revision, change)


def record_unpublished(article: Article, was_status: str) -> Manifest | None:
    if was_status != STATUS_PUBLISHED or article.live_revision is None:
        return None
    return record_manifest(article, article.live_revision, "Taken off sale by the publisher.")


def live_manifest(article: Article) -> Manifest | None:
    """The manifest of what readers get now; made for articles published before manifests."""
    manifest = latest_manifest(article)
    if manifest is not None or article.live_revision is None:
        return manifest
    lock_article(article)
    return latest_manifest(article) or record_manifest(
        article, article.live_revision, f"Published (revision {article.live_revision.number})."
    )


def manifest_chain(article: Article) -> list[Manifest]:
    """Every manifest of the article, newest first."""
    return list(
        db.session.scalars(
            select(Manifest)
            .where(Manifest.article_id == article.id)
            .order_by(Manifest.sequence.desc())
        )
    )


def corrections(article: Article) -> list[dict[str, Any]]:
    """Every change after the first publication, newest first: `[{"at", "what"}]`."""
    rows = db.session.execute(
        select(Manifest.created_at, Manifest.change)
        .where(Manifest.article_id == article.id, Manifest.sequence > 1)
        .order_by(Manifest.sequence.desc())
    ).all()
    return [{"at": at.isoformat(), "what": what} for at, what in rows]


def manifest_document(manifest: Manifest) -> dict[str, Any]:
    return {"manifest": manifest.payload, "jws": manifest.jws}
