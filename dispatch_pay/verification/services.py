"""Attach reports to the text they checked; decide whether a text may be published."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from dispatch_pay.errors import DomainError
from models import Article, ArticleRevision, VerificationReport, db


def _stale(message: str) -> DomainError:
    return DomainError("verification_stale", message, status=409)


def attach_report(article: Article, data: dict[str, Any]) -> VerificationReport:
    """Store the report for the article's newest text, replacing an earlier report of it."""
    revision = article.latest_revision
    if revision is None:
        raise DomainError("verification_missing", "The article has no text to verify.", status=409)
    expected = data.get("body_sha256")
    if expected is not None and expected != revision.body_sha256:
        raise _stale(
            "The report was made for another version of the text; check the current text again."
        )
    claims = [
        {
            "claim": c["claim"],
            "verdict": c["verdict"],
            "sources": [{"url": s["url"], "title": s.get("title", "")} for s in c["sources"]],
            "note": c.get("note") or "",
        }
        for c in data["claims"]
    ]
    verdicts = [c["verdict"] for c in claims]
    report = revision.report or VerificationReport(revision=revision)
    report.body_sha256 = revision.body_sha256
    report.verifier = data["verifier"]
    report.checked_at = data["checked_at"]
    report.claims = claims
    report.supported_count = verdicts.count("supported")
    report.weak_count = verdicts.count("weak")
    report.unverified_count = verdicts.count("unverified")
    report.contradicted_count = verdicts.count("contradicted")
    db.session.add(report)
    db.session.flush()
    return report


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
