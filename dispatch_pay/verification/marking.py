"""Marking each quoted passage of the paid text, linked to and from its verdict.

Plain links (`#claim-N` and `#quote-N`), no JavaScript. A quote is an exact passage
of the Markdown body; it is marked where the same words appear in one run of the
rendered text. A quote that spans formatting (a link, emphasis) cannot be found that
way: its claim then still shows the quote in the Verifier section, unmarked in the text.
"""

from __future__ import annotations

import html
from typing import Any

from markupsafe import Markup

from dispatch_pay.security import http_url

# Shown beside the verdict's name so the verdicts differ without colour.
VERDICT_SIGNS = {"supported": "✓", "weak": "~", "unverified": "?", "contradicted": "✗"}


def _inside_tag(text: str, pos: int) -> bool:
    return text.rfind("<", 0, pos) > text.rfind(">", 0, pos)


def _inside_entity(text: str, pos: int) -> bool:
    """Would a mark at pos split a character reference such as `&amp;`?"""
    amp = text.rfind("&", max(0, pos - 10), pos)
    return amp != -1 and ";" not in text[amp:pos]


def _inside_link(text: str, pos: int) -> bool:
    """Links may not nest: a passage inside a link of the body is left unmarked."""
    return text.rfind("<a ", 0, pos) > text.rfind("</a>", 0, pos)


def _markable(text: str, pos: int) -> bool:
    return not (_inside_tag(text, pos) or _inside_entity(text, pos) or _inside_link(text, pos))


def _find_text(body: str, needle: str) -> int:
    """The first place the needle stands in plain text, or -1."""
    start = body.find(needle)
    while start != -1 and not _markable(body, start):
        start = body.find(needle, start + 1)
    return start


def _rendered_forms(quote: str) -> list[str]:
    return list(dict.fromkeys([html.escape(quote, quote=False), html.escape(quote)]))


def _marked(passage: str, number: int, verdict: str) -> str:
    sign = VERDICT_SIGNS.get(verdict, "")
    verdict = html.escape(verdict)
    return (
        f'<mark class="claim-quote quote-{verdict}" id="quote-{number}">{passage}'
        f'<a class="quote-ref verdict verdict-{verdict}" href="#claim-{number}" '
        f'aria-label="Claim {number}: {verdict}">{sign} {number} {verdict}</a></mark>'
    )


def mark_quotes(body_html: str, claims: list[dict[str, Any]]) -> tuple[Markup, set[int]]:
    """The sanitised body with each found quote marked; and the numbers of those claims."""
    body = str(body_html)
    marked: set[int] = set()
    for number, claim in enumerate(claims, 1):
        quote = claim.get("quote")
        if not quote:
            continue
        for form in _rendered_forms(quote):
            at = _find_text(body, form)
            if at != -1:
                end = at + len(form)
                body = body[:at] + _marked(form, number, claim["verdict"]) + body[end:]
                marked.add(number)
                break
    # The body was sanitised when it was stored; what is added here is escaped text
    # and fixed markup with a verdict from the four known ones.
    return Markup(body), marked  # noqa: S704


def claim_reviews(
    report: dict[str, Any], article_url: str, published_at: str | None
) -> list[dict[str, Any]]:
    """schema.org ClaimReview, one per claim, for the paid page's JSON-LD only."""
    reviews = []
    for number, claim in enumerate(report.get("claims") or [], 1):
        review: dict[str, Any] = {
            "@type": "ClaimReview",
            "url": f"{article_url}#claim-{number}",
            "claimReviewed": claim["claim"],
            "author": {"@type": "Organization", "name": report.get("verifier") or ""},
            "datePublished": (report.get("checked_at") or published_at or "")[:10],
            "reviewRating": {"@type": "Rating", "alternateName": claim["verdict"]},
            "itemReviewed": {
                "@type": "Claim",
                # Only http(s) sources (defence in depth: input validation refuses others).
                "appearance": [
                    {"@type": "CreativeWork", "url": s["url"], "name": s.get("title") or s["url"]}
                    for s in claim.get("sources") or []
                    if http_url(s.get("url"))
                ],
            },
        }
        reviews.append(review)
    return reviews
