from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from dispatch_pay.inputs import not_blank
from models import VERDICTS, VerificationReport

# Reports are dated; anything outside these years is a client mistake.
CHECK_YEARS = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


class SourceSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    url = fields.Url(required=True, schemes={"http", "https"}, validate=validate.Length(max=2000))
    title = fields.String(load_default="", validate=validate.Length(max=300))


class ClaimSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    claim = fields.String(required=True, validate=[validate.Length(min=1, max=2000), not_blank])
    verdict = fields.String(
        required=True, validate=validate.OneOf(VERDICTS, error="Must be one of: {choices}.")
    )
    sources = fields.List(
        fields.Nested(SourceSchema), load_default=list, validate=validate.Length(max=50)
    )
    note = fields.String(load_default="", allow_none=True, validate=validate.Length(max=4000))


def plausible_check_time(value: datetime) -> None:
    """A check happened in this century; offsets that overflow UTC are refused too."""
    try:
        utc = value.astimezone(UTC)
    except OverflowError as exc:
        raise ValidationError("Not a valid date and time.") from exc
    if not CHECK_YEARS[0] <= utc < CHECK_YEARS[1]:
        raise ValidationError("Must be a time between 2000 and 2099.")


class ReportInputSchema(Schema):
    verifier = fields.String(required=True, validate=[validate.Length(min=1, max=200), not_blank])
    checked_at = fields.AwareDateTime(
        required=True, default_timezone=None, validate=plausible_check_time
    )
    claims = fields.List(
        fields.Nested(ClaimSchema), required=True, validate=validate.Length(min=1, max=500)
    )
    # Optional: the SHA-256 of the Markdown body the verifier read. When given, the
    # report is refused unless it matches the article's newest text.
    body_sha256 = fields.String(validate=validate.Regexp(r"^[0-9a-f]{64}$"))


def counts(report: VerificationReport) -> dict[str, int]:
    return {
        "total": report.claim_count,
        "supported": report.supported_count,
        "weak": report.weak_count,
        "unverified": report.unverified_count,
        "contradicted": report.contradicted_count,
    }


def summary_line(report: VerificationReport | None) -> str:
    """'5 claims checked: 3 supported, 1 weak, 1 unverified'."""
    if report is None:
        return "Not verified yet"
    total = report.claim_count
    parts = [
        f"{n} {verdict}"
        for verdict, n in (
            ("supported", report.supported_count),
            ("weak", report.weak_count),
            ("unverified", report.unverified_count),
            ("contradicted", report.contradicted_count),
        )
        if n
    ]
    noun = "claim" if total == 1 else "claims"
    return f"{total} {noun} checked: " + ", ".join(parts)


def summary(report: VerificationReport | None) -> dict[str, Any]:
    if report is None:
        return {"summary": summary_line(None), "counts": None}
    return {"summary": summary_line(report), "counts": counts(report)}


def full_report(report: VerificationReport | None) -> dict[str, Any] | None:
    if report is None:
        return None
    return {
        **summary(report),
        "verifier": report.verifier,
        "checked_at": report.checked_at.isoformat(),
        "body_sha256": report.body_sha256,
        "claims": [
            {
                "claim": c["claim"],
                "verdict": c["verdict"],
                "sources": [
                    {"url": s["url"], "title": s.get("title", "")} for s in c.get("sources", [])
                ],
                "note": c.get("note") or "",
            }
            for c in report.claims
        ],
    }


class VerificationSummarySchema(Schema):
    summary = fields.String()
    counts = fields.Dict(keys=fields.String(), values=fields.Integer(), allow_none=True)


class SourceOutSchema(Schema):
    url = fields.String()
    title = fields.String()


class ClaimOutSchema(Schema):
    claim = fields.String()
    verdict = fields.String()
    sources = fields.List(fields.Nested(SourceOutSchema))
    note = fields.String()


class ReportSchema(VerificationSummarySchema):
    verifier = fields.String()
    checked_at = fields.String()
    body_sha256 = fields.String()
    claims = fields.List(fields.Nested(ClaimOutSchema))
