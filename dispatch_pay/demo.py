"""The demo publication: a publisher, a reader, four published dispatches and a blocked draft.

Running `seed` again finds everything by email or slug and changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from dispatch_pay.accounts.services import find_user_by_email, register_user
from dispatch_pay.catalog.services import find_article
from dispatch_pay.errors import DomainError
from dispatch_pay.publisher.services import create_article, publish
from dispatch_pay.verification.services import attach_report
from models import ROLE_PUBLISHER, User, db

PUBLISHER_EMAIL = "editor@dispatch.example"
PUBLISHER_PASSWORD = "editor-demo-2026"
READER_EMAIL = "reader@dispatch.example"
READER_PASSWORD = "reader-demo-2026"
VERIFIER = "dispatch-verifier 1.4"


def _claim(claim: str, verdict: str, url: str, title: str, note: str = "") -> dict[str, Any]:
    return {
        "claim": claim,
        "verdict": verdict,
        "sources": [{"url": url, "title": title}],
        "note": note,
    }


DISPATCHES: list[dict[str, Any]] = [
    {
        "slug": "harbour-cranes-go-electric",
        "title": "The harbour that unplugged its diesel cranes",
        "teaser": "A mid-sized port swapped its diesel straddle carriers for battery ones. "
        "The savings came from somewhere nobody planned for.",
        "price": {"amount": 39, "currency": "usd"},
        "body": """The port authority expected the new battery straddle carriers to pay for
themselves through fuel. Eighteen months in, the bigger saving is in maintenance: an
electric drivetrain has far fewer moving parts, and the workshop now spends most of its
time on tyres and hydraulics.

## What changed on the quay

Charging happens in the gaps between ship calls. The operators built a schedule that
sends each carrier to a charger when its battery falls below forty percent, which keeps
enough machines on the quay during a peak.

> "We stopped thinking of them as vehicles and started thinking of them as a fleet of
> batteries that happens to move boxes," the terminal's operations lead said.

## What did not change

Crane productivity, measured in moves per hour, stayed about where it was. The port
says noise complaints from the neighbouring district fell, though it has not published
the figures behind that claim.
""",
        "claims": [
            _claim(
                "Maintenance hours on the carriers fell after the switch.",
                "supported",
                "https://ports.example.org/annual-report-2025",
                "Port authority annual report 2025",
            ),
            _claim(
                "Carriers are sent to charge below forty percent battery.",
                "supported",
                "https://ports.example.org/ops-bulletin-14",
                "Operations bulletin 14",
            ),
            _claim(
                "Moves per hour stayed about the same.",
                "weak",
                "https://ports.example.org/quarterly-kpis",
                "Quarterly KPIs",
                "The KPI table covers only two of the six quarters since the switch.",
            ),
            _claim(
                "Noise complaints from the neighbouring district fell.",
                "unverified",
                "https://ports.example.org/community-notes",
                "Community liaison notes",
                "The port states this but has released no complaint counts.",
            ),
        ],
    },
    {
        "slug": "library-seed-exchange",
        "title": "Inside the library that lends seeds",
        "teaser": "Borrow tomatoes in spring, return seeds in autumn. A county library's "
        "seed exchange has turned into its busiest counter.",
        "price": {"amount": 49, "currency": "usd"},
        "body": """Every March a queue forms at the county library before the doors open. The
people in it are not after books: they want seed packets from a converted card catalogue
whose drawers are labelled *beans*, *squash* and *tomatoes, heirloom*.

The rules are simple. Borrowers take up to five packets, grow them out, and bring back
seed from their best plants. Returns are dried, sorted by volunteers and relabelled with
the grower's notes.

## Why libraries do this

Librarians describe the exchange as a collection like any other: it circulates, it needs
cataloguing, and it records local knowledge. Varieties that do well in the valley's short
season are now over-represented in the drawers, which is exactly the point.

Return rates are the weak spot. The library says roughly a third of borrowers bring seed
back, but volunteers suspect the real figure is lower.
""",
        "claims": [
            _claim(
                "Borrowers may take up to five packets.",
                "supported",
                "https://library.example.org/seed-exchange-rules",
                "Seed exchange rules",
            ),
            _claim(
                "Returned seed is sorted and relabelled by volunteers.",
                "supported",
                "https://library.example.org/volunteers",
                "Volunteer handbook",
            ),
            _claim(
                "Roughly a third of borrowers return seed.",
                "weak",
                "https://library.example.org/board-minutes-2025-10",
                "Board minutes, October 2025",
                "The minutes give an estimate, not a count.",
            ),
            _claim(
                "Short-season varieties are over-represented in the drawers.",
                "unverified",
                "https://library.example.org/seed-catalogue",
                "Seed catalogue",
                "The catalogue does not record growing season.",
            ),
        ],
    },
    {
        "slug": "night-trains-return",
        "title": "Night trains are back. Are the numbers?",
        "teaser": "Sleeper services have returned to a dozen routes. We went through the "
        "ridership data, the subsidies and the timetables to see what is working.",
        "price": {"amount": 129, "currency": "usd"},
        "body": """Ten years ago the sleeper train looked finished. Budget airlines had taken the
business traveller and the backpacker alike, and operators were retiring their couchette
cars. Today a dozen overnight routes run again, and several sell out on summer weekends.

## Where the riders come from

Operators report that most sleeper passengers would otherwise have flown. That matters
for the climate case: a full sleeper train emits a fraction of the carbon of the same
trip by air, per passenger.

## What it costs

Most of the revived routes depend on public money. Subsidy contracts typically run for
several years and cover the gap between ticket revenue and the cost of crews, track
access and rolling stock.

| Route type | Typical occupancy | Subsidised |
|---|---|---|
| Capital to capital | High in summer | Often |
| Domestic overnight | Mixed | Usually |

## The bottleneck

Rolling stock is scarce. New sleeper coaches take years to order and build, and the
second-hand market is thin, so operators that want to add routes often cannot.
""",
        "claims": [
            _claim(
                "About a dozen overnight routes operate again.",
                "supported",
                "https://rail.example.org/network-map-2026",
                "Night network map 2026",
            ),
            _claim(
                "Most sleeper passengers would otherwise have flown.",
                "weak",
                "https://rail.example.org/passenger-survey",
                "Operator passenger survey",
                "One operator's survey; others have not published theirs.",
            ),
            _claim(
                "A full sleeper train emits a fraction of the carbon of flying, per passenger.",
                "supported",
                "https://climate.example.org/transport-factors",
                "Transport emission factors",
            ),
            _claim(
                "Most revived routes depend on public subsidy.",
                "supported",
                "https://rail.example.org/subsidy-contracts",
                "Published subsidy contracts",
            ),
            _claim(
                "Several routes sell out on summer weekends.",
                "unverified",
                "https://rail.example.org/press-release-june",
                "Operator press release",
                "Stated by the operator; no booking data released.",
            ),
        ],
    },
    {
        "slug": "how-we-check-a-dispatch",
        "title": "How we check a dispatch before you read it",
        "teaser": "A free look behind the scenes: what our verifier does with every claim, "
        "and why a weak claim still gets published.",
        "price": {"amount": 0, "currency": "usd"},
        "body": """Every dispatch you can buy here went through the same check. The verifier
splits the text into factual claims and looks up the source each claim rests on.

Each claim gets one of four verdicts: **supported**, **weak**, **unverified** or
**contradicted**. Only the last one stops a dispatch from being published.

Weak and unverified claims are published, and we show them to you as such at the end of
the dispatch. We would rather tell you what we could not confirm than quietly cut it, and
readers tell us they trust a dispatch more when it marks what could not be confirmed.
""",
        "claims": [
            _claim(
                "Only a contradicted claim blocks publication.",
                "supported",
                "https://dispatch.example/verification",
                "Our verification policy",
            ),
            _claim(
                "Weak and unverified claims are shown to readers.",
                "supported",
                "https://dispatch.example/verification",
                "Our verification policy",
            ),
            _claim(
                "Every dispatch for sale went through the verifier.",
                "weak",
                "https://dispatch.example/pipeline-log",
                "Pipeline log",
                "The log covers dispatches since the current pipeline went live.",
            ),
            _claim(
                "Readers trust a dispatch more when it marks what could not be confirmed.",
                "unverified",
                "https://dispatch.example/reader-survey",
                "Reader survey",
                "Our own survey; its results are not published yet.",
            ),
        ],
    },
]

BLOCKED_DRAFT: dict[str, Any] = {
    "slug": "record-wheat-harvest",
    "title": "A record wheat harvest, by one count",
    "teaser": "Farm groups call it the biggest harvest on record. The statistics office "
    "has not finished counting.",
    "price": {"amount": 49, "currency": "usd"},
    "body": """Farm groups say this year's wheat harvest was the largest on record, beating
the previous high by a wide margin. Yields rose in every region.
""",
    "claims": [
        _claim(
            "This year's harvest is the largest on record.",
            "contradicted",
            "https://stats.example.org/harvest-preliminary",
            "Preliminary harvest estimate",
            "The preliminary estimate ranks it third.",
        ),
        _claim(
            "Yields rose in every region.",
            "weak",
            "https://stats.example.org/regional-yields",
            "Regional yields",
            "Two regions report flat yields.",
        ),
    ],
}


# The passage of the text each claim is about (exact; the paid page marks it).
QUOTES = {
    "Maintenance hours on the carriers fell after the switch.": (
        "the bigger saving is in maintenance"
    ),
    "Carriers are sent to charge below forty percent battery.": "falls below forty percent",
    "Moves per hour stayed about the same.": (
        "Crane productivity, measured in moves per hour, stayed about where it was"
    ),
    "Noise complaints from the neighbouring district fell.": (
        "noise complaints from the neighbouring district fell"
    ),
    "Borrowers may take up to five packets.": "Borrowers take up to five packets",
    "Returned seed is sorted and relabelled by volunteers.": (
        "Returns are dried, sorted by volunteers and relabelled"
    ),
    "Roughly a third of borrowers return seed.": "roughly a third of borrowers bring seed",
    "Short-season varieties are over-represented in the drawers.": (
        "now over-represented in the drawers"
    ),
    "About a dozen overnight routes operate again.": "Today a dozen overnight routes run again",
    "Most sleeper passengers would otherwise have flown.": (
        "most sleeper passengers would otherwise have flown"
    ),
    "A full sleeper train emits a fraction of the carbon of flying, per passenger.": (
        "a full sleeper train emits a fraction of the carbon"
    ),
    "Most revived routes depend on public subsidy.": (
        "Most of the revived routes depend on public money"
    ),
    "Several routes sell out on summer weekends.": "several sell out on summer weekends",
    "Only a contradicted claim blocks publication.": (
        "Only the last one stops a dispatch from being published"
    ),
    "Weak and unverified claims are shown to readers.": (
        "Weak and unverified claims are published, and we show them to you as such"
    ),
    "Every dispatch for sale went through the verifier.": (
        "Every dispatch you can buy here went through the same check"
    ),
    "Readers trust a dispatch more when it marks what could not be confirmed.": (
        "readers tell us they trust a dispatch more when it marks what could not be confirmed"
    ),
    "This year's harvest is the largest on record.": "the largest on record",
    "Yields rose in every region.": "Yields rose in every region",
}
for _spec in [*DISPATCHES, BLOCKED_DRAFT]:
    for _c in _spec["claims"]:
        _c["quote"] = QUOTES[_c["claim"]]


def _ensure_user(email: str, password: str, role: str | None = None) -> tuple[User, bool]:
    user = find_user_by_email(email)
    if user is not None:
        return user, False
    user = register_user(email, password)
    if role:
        user.role = role
    return user, True


def _ensure_article(author: User, spec: dict[str, Any], when: datetime, publish_it: bool) -> bool:
    try:
        find_article(spec["slug"])
        return False
    except DomainError:
        pass
    article = create_article(
        author,
        {k: spec[k] for k in ("slug", "title", "teaser", "body", "price")},
    )
    attach_report(article, {"verifier": VERIFIER, "checked_at": when, "claims": spec["claims"]})
    if publish_it:
        publish(article)
        article.published_at = when
    return True


def seed() -> Iterator[str]:
    publisher, new_publisher = _ensure_user(PUBLISHER_EMAIL, PUBLISHER_PASSWORD, ROLE_PUBLISHER)
    _reader, new_reader = _ensure_user(READER_EMAIL, READER_PASSWORD)
    base = datetime(2026, 11, 2, 7, 30, tzinfo=UTC)
    created = 0
    for i, spec in enumerate(DISPATCHES):
        created += _ensure_article(publisher, spec, base + timedelta(days=3 * i), True)
    created += _ensure_article(publisher, BLOCKED_DRAFT, base + timedelta(days=13), False)
    db.session.commit()
    if not (new_publisher or new_reader or created):
        yield "Demo publication already loaded; nothing changed."
        return
    yield f"Demo publication loaded: {created} article(s) created."
    yield f"Publisher login: {PUBLISHER_EMAIL} / {PUBLISHER_PASSWORD}"
    yield f"Reader login:    {READER_EMAIL} / {READER_PASSWORD}"
