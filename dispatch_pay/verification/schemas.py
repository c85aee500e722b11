from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from dispatch_pay.inputs import not_blank
from models import VERDICTS, VerificationReport

# Reports are dated; anything outside these years is a client mistake.
CHECK_YEARS = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
# A check cannot have happened in the future; this much clock skew is forgiven.
CLOCK_SKEW = timedelta(minutes=5)


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
    # The exact passage of the body the claim is about (checked against the text in
    # the service, which knows the text).
    quote = fields.String(validate=[validate.Length(min=1, max=2000), not_blank])


def plausible_check_time(value: datetime) -> None:
    """A check happened in this century; offsets that overflow UTC are refused too."""
    try:
        utc = value.astimezone(UTC)
    except OverflowError as exc:
        raise ValidationError("Not a valid date and time.") from exc
    if not CHECK_YEARS[0] <= utc < CHECK_YEARS[1]:
        raise ValidationError("Must be a time between 2000 and 2099.")
    if utc > datetime.now(UTC) + CLOCK_SKEW:
        raise ValidationError("Must not be in the future.")


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

    @validates_schema
    def no_duplicate_claims(self, data: dict[str, Any], **_kwargs: Any) -> None:
        """One claim, one verdict: the same claim twice would count twice in every total."""
        seen: dict[str, int] = {}
        errors: dict[int, dict[str, list[str]]] = {}
        for i, claim in enumerate(data.get("claims") or []):
            key = " ".join(claim["claim"].split()).casefold()
            if key in seen:
                errors[i] = {"claim": [f"Duplicates claim {seen[key]}."]}
            seen.setdefault(key, i)
        if errors:
            raise ValidationError({"claims": errors})


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
                **({"quote": c["quote"]} if c.get("quote") else {}),
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
    quote = fields.String(metadata={"description": "The passage of the body the claim is about."})


class ReportSchema(VerificationSummarySchema):
    verifier = fields.String()
    checked_at = fields.String()
    body_sha256 = fields.String()
    claims = fields.List(fields.Nested(ClaimOutSchema))


class ManifestSchema(Schema):
    article = fields.String()
    revision = fields.Integer()
    text_sha256 = fields.String(metadata={"description": "Hex SHA-256 of `body` in UTF-8."})
    report_sha256 = fields.String(
        metadata={
            "description": "Hex SHA-256 of the full article's `verification` object as "
            "RFC 8785 canonical JSON."
        }
    )
    verdicts = fields.Dict(keys=fields.String(), values=fields.Integer())
    verifier = fields.String()
    checked_at = fields.String()
    published_at = fields.String()
    previous = fields.String(
        allow_none=True,
        metadata={"description": "Hex SHA-256 of the previous manifest's compact JWS."},
    )


class SignedManifestSchema(Schema):
    manifest = fields.Nested(ManifestSchema)
    jws = fields.String(metadata={"description": "Compact JWS (EdDSA) over the manifest."})


class CorrectionSchema(Schema):
    at = fields.String()
    what = fields.String()


class PublicKeySchema(Schema):
    kty = fields.String()
    crv = fields.String()
    x = fields.String()
    kid = fields.String()
    alg = fields.String()
    use = fields.String()


class KeySetSchema(Schema):
    keys = fields.List(fields.Nested(PublicKeySchema))
