"""Attach reports to the text they checked; decide whether a text may be published."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from sqlalchemy import select

from dispatch_pay.errors import DomainError
from dispatch_pay.verification.manifests import lock_article, record_manifest, report_sha256
from dispatch_pay.verification.schemas import summary_line
from models import (
    STATUS_PUBLISHED,
    STATUS_WITHDRAWN,
    Article,
    ArticleRevision,
    VerificationReport,
    db,
    utcnow,
)


def _stale(message: str) -> DomainError:
    return DomainError("verification_stale", message, status=409)


def attach_report(article: Article, data: dict[str, Any]) -> VerificationReport:
    """Store the report for the text it checked, replacing an earlier report of that text.

    A report for the live text replaces the live report: the change is signed into
    the article's manifest chain, and a contradicted claim takes the article off sale
    at once (its buyers keep their text with the new report).
    """
    lock_article(article)
    revision = _checked_revision(article, data.get("body_sha256"))
    claims = [_stored_claim(c) for c in data["claims"]]
    _require_quotes_in(revision, claims)
    is_live = revision.id == article.live_revision_id
    before = report_sha256(revision.report) if is_live and revision.report else None
    verdicts = [c["verdict"] for c in claims]
    report = revision.report or VerificationReport(revision=revision)
    report.body_sha256 = revision.body_sha256
    report.verifier = data["verifier"]
    report.checked_at = data["checked_at"].astimezone(UTC)
    report.claims = claims
    report.supported_count = verdicts.count("supported")
    report.weak_count = verdicts.count("weak")
    report.unverified_count = verdicts.count("unverified")
    report.contradicted_count = verdicts.count("contradicted")
    db.session.add(report)
    db.session.flush()
    if is_live and report_sha256(report) != before:
        _replace_live_report(article, revision, report)
    return report


def _checked_revision(article: Article, body_sha256: str | None) -> ArticleRevision:
    """The newest text, or the live one when the report names the live text's hash."""
    latest = article.latest_revision
    if latest is None:
        raise DomainError("verification_missing", "The article has no text to verify.", status=409)
    if body_sha256 is None or body_sha256 == latest.body_sha256:
        return latest
    live = article.live_revision
    if live is not None and body_sha256 == live.body_sha256:
        return live
    raise _stale(
        "The report was made for another version of the text; check the current text again."
    )


def _stored_claim(claim: dict[str, Any]) -> dict[str, Any]:
    stored = {
        "claim": claim["claim"],
        "verdict": claim["verdict"],
        "sources": [{"url": s["url"], "title": s.get("title", "")} for s in claim["sources"]],
        "note": claim.get("note") or "",
    }
    if claim.get("quote"):
        stored["quote"] = claim["quote"].replace("\r\n", "\n").replace("\r", "\n")
    return stored


def _require_quotes_in(revision: ArticleRevision, claims: list[dict[str, Any]]) -> None:
    missing = {
        i: {"quote": ["Not found in the text: a quote must be an exact passage of the body."]}
        for i, c in enumerate(claims)
        if "quote" in c and c["quote"] not in revision.body_markdown
    }
    if missing:
        raise DomainError(
            "quote_not_found",
            "A quote is not a passage of the text the report checked.",
            status=422,
            fields={"claims": missing},
        )


def _replace_live_report(
    article: Article, revision: ArticleRevision, report: VerificationReport
) -> None:
    counts = summary_line(report).split(": ", 1)[-1]
    change = f"Verifier report replaced: {counts}."
    if report.contradicted_count and article.status == STATUS_PUBLISHED:
        article.status = STATUS_WITHDRAWN
        article.updated_at = utcnow()
        change = (
            f"Verifier report replaced: {counts}. Taken off sale until a corrected text "
            "is checked and published."
        )
    db.session.flush()
    record_manifest(article, revision, change)


def contradicted_claims(report: VerificationReport) -> list[dict[str, Any]]:
    return [c for c in report.claims if c["verdict"] == "contradicted"]


def publishable_revision(article: Article) -> ArticleRevision:
    """The newest revision, if its report is current and contradicts nothing; else a 409."""
    revision = article.latest_revision
    if revision is None:
        raise DomainError("verification_missing", "The article has no text yet.", status=409)
    report = revision.report
    if report is None or report.body_sha256 != revision.body_sha256:
        if _an_earlier_revision_was_checked(article, revision):
            raise _stale("The text changed after it was checked; attach a report for the new text.")
        raise DomainError(
            "verification_missing", "Attach a verifier report before publishing.", status=409
        )
    blocked = contradicted_claims(report)
    if blocked:
        raise DomainError(
            "contradicted_claims",
            (
                "1 claim is contradicted by its sources; fix it before publishing."
                if len(blocked) == 1
                else f"{len(blocked)} claims are contradicted by their sources; "
                "fix them before publishing."
            ),
            status=409,
            extra={"claims": blocked},
        )
    return revision


def _an_earlier_revision_was_checked(article: Article, revision: ArticleRevision) -> bool:
    return (
        db.session.scalar(
            select(VerificationReport.id)
            .join(ArticleRevision, VerificationReport.revision_id == ArticleRevision.id)
            .where(ArticleRevision.article_id == article.id, ArticleRevision.id != revision.id)
            .limit(1)
        )
        is not None
    )


def verification_state(article: Article) -> str:
    """'current', 'stale' or 'missing' for the newest text (shown to publishers)."""
    revision = article.latest_revision
    if revision is not None and revision.report is not None:
        return "current"
    if revision is not None and _an_earlier_revision_was_checked(article, revision):
        return "stale"
    return "missing"
