"""The paid page marks quoted passages and describes each claim as a schema.org ClaimReview."""

from __future__ import annotations

import re
from typing import Any

import extruct
from flask.testing import FlaskClient

from dispatch_pay.publisher.services import publish
from dispatch_pay.verification.marking import claim_reviews, mark_quotes
from dispatch_pay.verification.services import attach_report
from models import db
from tests.support.factories import claims, grant, make_article, make_user
from tests.support.web import log_in

BODY = (
    "Harbour cranes now run on batteries.\n\n"
    "Maintenance hours fell by a third & noise fell too.\n\n"
    "Moves per *hour* stayed flat.\n"
)


def quoted_article(price: int = 39) -> Any:
    article = make_article(body=BODY, price=price, verdicts=(), published=False)
    claim_list = claims("supported", "weak", "unverified", "weak")
    claim_list[0]["quote"] = "Harbour cranes now run on batteries"
    claim_list[1]["quote"] = "fell by a third & noise"  # escaped in the HTML
    claim_list[2]["quote"] = "Moves per *hour* stayed flat"  # spans emphasis: not markable
    claim_list[3]["sources"].append({"url": "https://second.example.org/x", "title": "Second"})
    attach_report(
        article,
        {"verifier": "Verifier Inc.", "checked_at": article.created_at, "claims": claim_list},
    )
    publish(article)
    db.session.commit()
    return article


def owner_page(client: FlaskClient, article: Any) -> str:
    reader = make_user()
    grant(reader, article)
    log_in(client, reader.email)
    return client.get(f"/articles/{article.slug}").get_data(as_text=True)


def test_quoted_passages_link_to_their_verdicts_and_back(client: FlaskClient) -> None:
    article = quoted_article()
    page = owner_page(client, article)
    body = page[page.index('class="article-body') : page.index('id="verifier"')]

    first = re.search(r'<mark class="claim-quote quote-supported" id="quote-1">(.*?)</mark>', body)
    assert first and first.group(1).startswith("Harbour cranes now run on batteries")
    assert '<a class="quote-ref verdict verdict-supported" href="#claim-1"' in first.group(1)
    second = re.search(r'<mark class="claim-quote quote-weak" id="quote-2">(.*?)</mark>', body)
    assert second and second.group(1).startswith("fell by a third &amp; noise")
    assert 'id="quote-3"' not in body  # spans formatting: shown in the list only

    # Each verdict links back to its passage; the list has an anchor per claim.
    for n in (1, 2, 3, 4):
        assert f'id="claim-{n}"' in page
    assert 'href="#quote-1"' in page and 'href="#quote-2"' in page
    assert 'href="#quote-3"' not in page
    assert "Moves per *hour* stayed flat" in page  # the unmarked quote, in the Verifier list

    # Not by colour alone: a sign and a word per verdict, in the text and in the list.
    assert "✓ 1 supported</a>" in first.group(1) and "~ 2 weak</a>" in second.group(1)
    for sign in ("✓", "~", "?"):
        assert f'<span class="verdict-sign" aria-hidden="true">{sign}</span>' in page
    # No JavaScript needed for any of it.
    assert "<script" not in body


def test_claim_reviews_in_the_paid_page_and_none_in_the_teaser(client: FlaskClient) -> None:
    article = quoted_article()
    teaser = client.get(f"/articles/{article.slug}").get_data(as_text=True)
    found = extruct.extract(teaser, syntaxes=["json-ld", "microdata", "rdfa"], uniform=True)
    assert "ClaimReview" not in str(found)
    assert "Claim number" not in teaser

    page = owner_page(client, article)
    data = extruct.extract(page, syntaxes=["json-ld"], uniform=True)["json-ld"]
    (news,) = data
    assert news["@type"] == "NewsArticle"
    reviews = news["review"]
    report = client.get(f"/api/v1/articles/{article.slug}").get_json()["verification"]
    assert [r["claimReviewed"] for r in reviews] == [c["claim"] for c in report["claims"]]
    for review, claim in zip(reviews, report["claims"], strict=True):
        assert review["@type"] == "ClaimReview"
        assert review["reviewRating"]["alternateName"] == claim["verdict"]
        assert review["author"]["name"] == "Verifier Inc."
        assert review["datePublished"] == report["checked_at"][:10]
        assert review["itemReviewed"]["@type"] == "Claim"
        assert [a["url"] for a in review["itemReviewed"]["appearance"]] == [
            s["url"] for s in claim["sources"]
        ]


def test_the_free_page_carries_claim_reviews_and_the_teaser_of_a_paid_one_none(
    client: FlaskClient,
) -> None:
    free = quoted_article(price=0)
    page = client.get(f"/articles/{free.slug}").get_data(as_text=True)
    data = extruct.extract(page, syntaxes=["json-ld"], uniform=True)["json-ld"]
    assert len(data[0]["review"]) == 4


def test_marks_never_split_a_tag_an_entity_or_a_link() -> None:
    body = (
        '<p>An <a href="https://x.example/example">example link</a> &amp; an example.</p>'
        '<p title="example">Plain example here.</p>'
    )
    marked, found = mark_quotes(
        body,
        [
            {"claim": "a", "verdict": "weak", "quote": "amp"},
            {"claim": "b", "verdict": "supported", "quote": "example"},
        ],
    )
    html = str(marked)
    assert "&amp;" in html  # the entity is whole
    assert 'href="https://x.example/example"' in html and 'title="example"' in html
    assert "example link</a>" in html  # nothing inside the body's own link
    assert '<mark class="claim-quote quote-supported" id="quote-2">example<a' in html
    assert html.index('id="quote-2"') > html.index("&amp;")
    assert found == {1, 2}  # "amp" found in "example", after the entity
    assert html.count("<a ") == 3  # the body's link and one reference per mark


def test_claim_reviews_carry_only_web_sources() -> None:
    report = {
        "verifier": "v",
        "checked_at": "2026-11-01T00:00:00+00:00",
        "claims": [
            {
                "claim": "c",
                "verdict": "weak",
                "sources": [
                    {"url": "javascript:alert(1)", "title": "x"},
                    {"url": "https://ok.example/a", "title": "ok"},
                ],
            }
        ],
    }
    (review,) = claim_reviews(report, "https://site.example/articles/a", None)
    assert review["itemReviewed"]["appearance"] == [
        {"@type": "CreativeWork", "url": "https://ok.example/a", "name": "ok"}
    ]
