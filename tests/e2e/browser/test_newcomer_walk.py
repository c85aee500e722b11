"""What a newcomer tripped over (issue 17), in a real browser at 390 and 1280 px wide.

Walks the reader's and the publisher's pages and checks: no page is wider than the
screen, the sales chart's labels are at least 12 px as drawn, the wallet's presets sit on
one row and its amount field refuses what the API refuses, the token's Copy button
copies and the "API tokens" tab is current, the editor previews in the readers' face,
a refused publish ends on the article's page, and each verdict looks different without
relying on colour. Screenshots: dispatch_browser_ux17_*.png in the temporary directory.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.support import live as live_support
from tests.support.live import SCREENSHOTS, LiveSite, fill_card, needs_chromium, sign_up

pytestmark = [pytest.mark.browser, pytest.mark.e2e, needs_chromium]
browser = live_support.browser
live_site = live_support.live_site

WIDTHS = (390, 1280)
ARTICLE = "/articles/harbour-cranes-go-electric"
FREE = "/articles/how-we-check-a-dispatch"
RANGE = "A top-up is between $0.50 and $100.00."


@pytest.fixture(scope="module")
def sold(browser: Any, live_site: LiveSite) -> str:
    """A reader tops up a typed amount ($7.50) and buys a dispatch: the charts have a bar."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    page = context.new_page()
    try:
        email = sign_up(page, live_site, next_path=ARTICLE)
        page.locator("#topup-buy-button").click()
        page.locator("#amount-other").fill("7.50")
        fill_card(page, "4242 4242 4242 4242")
        page.get_by_role("button", name="Pay $7.50 and read").click()
        page.wait_for_url(re.compile(re.escape(ARTICLE) + "$"))
        expect(page.locator("p.flash")).to_contain_text("$7.50 added to your wallet")
    finally:
        context.close()
    return email


@pytest.fixture(params=WIDTHS, ids=lambda w: f"{w}px")
def width(request: pytest.FixtureRequest) -> int:
    return int(request.param)


@pytest.fixture()
def context(browser: Any, width: int) -> Any:
    ctx = browser.new_context(viewport={"width": width, "height": 900})
    ctx.set_default_timeout(20_000)
    ctx.grant_permissions(["clipboard-read", "clipboard-write"])
    yield ctx
    ctx.close()


def open_page(context: Any) -> tuple[Any, list[str]]:
    """A page that records JavaScript errors and failed loads (a missing favicon is one)."""
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"error: {exc}"))
    page.on(
        "response",
        lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None,
    )
    return page, problems


def overflow(page: Any) -> int:
    """How many CSS pixels the page is wider than the window (0: it fits)."""
    return int(
        page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    )


def shot(page: Any, name: str, width: int) -> None:
    page.screenshot(path=SCREENSHOTS / f"dispatch_browser_ux17_{name}_{width}.png", full_page=True)


def log_in(page: Any, site: LiveSite, email: str, password: str) -> None:
    page.goto(site.url("/login"))
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("main button[type=submit]")
    page.wait_for_url(lambda u: "/login" not in u)


def test_reader_pages(context: Any, live_site: LiveSite, width: int, sold: str) -> None:
    page, problems = open_page(context)
    wide: dict[str, int] = {}
    for path in ["/", ARTICLE, FREE, "/verification", "/signup", "/login"]:
        page.goto(live_site.url(path))
        if overflow(page):
            wide[path] = overflow(page)
    shot(page, "login", width)
    page.goto(live_site.url("/"))
    shot(page, "front", width)
    expect(page.locator("#verification-note")).to_have_count(1)
    assert page.locator("text=weak and unverified claims are marked").count() == 1
    # The browser asks for the icon itself: it must be there (no 404 in the console).
    assert page.request.get(live_site.url("/favicon.ico")).status == 200
    assert page.locator('link[rel="icon"]').count() == 1

    # Each verdict its own look, not by colour alone: the claim's rule and the badge's symbol.
    page.goto(live_site.url(FREE))
    looks = page.evaluate(
        """() => Object.fromEntries(['supported', 'weak', 'unverified'].map(v => {
             const claim = document.querySelector('li.claim.verdict-' + v);
             const badge = claim.querySelector('.verdict');
             return [v, [getComputedStyle(claim).borderLeftStyle,
                         getComputedStyle(badge, '::before').content]];
           }))"""
    )
    styles = [style for style, _ in looks.values()]
    symbols = [symbol for _, symbol in looks.values()]
    assert len(set(styles)) == 3 and len(set(symbols)) == 3, looks
    shot(page, "verdicts", width)

    # The wallet: presets on one row, an amount field that refuses what the API refuses.
    log_in(page, live_site, sold, "a-long-reader-password")
    page.goto(live_site.url("/wallet"))
    if overflow(page):
        wide["/wallet"] = overflow(page)
    tops = page.evaluate(
        "[...document.querySelectorAll('.preset')]"
        ".map(e => Math.round(e.getBoundingClientRect().top))"
    )
    assert len(tops) == 3 and len(set(tops)) == 1, f"presets wrap: {tops}"
    page.locator("#amount-other").fill("0.10")
    expect(page.locator("#topup-submit")).to_have_text("Pay")
    page.locator("#topup-submit").click()
    expect(page.locator("#amount-error")).to_have_text(RANGE)
    expect(page.locator("#amount-other")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#topup-message")).to_have_text("")  # nothing was sent to Stripe
    shot(page, "wallet_refused", width)
    page.locator("#amount-other").fill("12.25")
    expect(page.locator("#amount-error")).to_be_hidden()
    expect(page.locator("#topup-submit")).to_have_text("Pay $12.25")
    page.locator(".preset").first.click()
    expect(page.locator("#amount-other")).to_have_value("")
    expect(page.locator("#topup-submit")).to_have_text("Pay $2.00")
    shot(page, "wallet", width)
    assert not wide, f"pages wider than {width}px: {wide}"
    assert not problems, problems


def chart_label_sizes(page: Any) -> list[float]:
    """Each chart label's font size as drawn on screen (CSS size times the SVG's scale)."""
    return list(
        page.evaluate(
            """() => [...document.querySelectorAll('.revenue-chart text.axis')]
                 .filter(t => getComputedStyle(t).display !== 'none')
                 .map(t => parseFloat(getComputedStyle(t).fontSize) * t.getScreenCTM().a)"""
        )
    )


def test_publisher_pages(context: Any, live_site: LiveSite, width: int, sold: str) -> None:
    page, problems = open_page(context)
    log_in(page, live_site, "editor@dispatch.example", "editor-demo-2026")
    wide: dict[str, int] = {}

    page.goto(live_site.url("/publisher"))
    wide["/publisher"] = overflow(page)
    sizes = chart_label_sizes(page)
    assert sizes and min(sizes) >= 12, sizes
    row = page.locator("#articles tbody tr").first
    # A phone gets a card per article; a wide screen the table.
    assert page.evaluate("(r) => getComputedStyle(r).display", row.element_handle()) == (
        "grid" if width < 640 else "table-row"
    )
    shot(page, "dashboard", width)

    page.goto(live_site.url("/publisher/sales"))
    wide["/publisher/sales"] = overflow(page)
    sizes = chart_label_sizes(page)
    assert sizes and min(sizes) >= 12, sizes
    expect(page.locator("#topups-received")).to_contain_text(re.compile(r"\d+ top-ups?, "))
    hint = page.locator("#sales-scroll-hint")
    if width < 640:
        expect(hint).to_be_visible()
    else:
        expect(hint).to_be_hidden()
    shot(page, "sales", width)

    # API tokens: the secret shows its underscore, Copy copies it, the tab stays current.
    page.goto(live_site.url("/publisher/tokens"))
    page.fill("#token-name", f"pipeline {width}")
    page.get_by_role("button", name="Create token").click()
    expect(page.locator('.pub-nav a[aria-current="page"]')).to_have_text("API tokens")
    page.wait_for_load_state("load")  # the stylesheets too, before reading computed styles
    secret = page.locator("#token-secret").input_value()
    assert secret.startswith("dp_")
    room = page.evaluate(
        """() => { const s = getComputedStyle(document.getElementById('token-secret'));
                   return [parseFloat(s.lineHeight), parseFloat(s.fontSize)]; }"""
    )
    assert room[0] >= 1.4 * room[1], room  # room below the baseline for "_"
    page.get_by_role("button", name="Copy").click()
    expect(page.locator("#copy-status")).to_have_text("Copied to the clipboard.")
    assert page.evaluate("navigator.clipboard.readText()") == secret
    wide["/publisher/tokens"] = overflow(page)
    shot(page, "tokens", width)

    # The editor previews in the readers' face.
    page.goto(live_site.url("/publisher/articles/new"))
    page.fill("#title", "Preview check")
    page.fill("#teaser", "A teaser.")
    page.fill("#body", "Some *body* text.")
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#preview-body")).to_be_visible()
    page.wait_for_load_state("load")
    preview_face = page.evaluate(
        "getComputedStyle(document.getElementById('preview-body')).fontFamily"
    )
    wide["/publisher/articles/new"] = overflow(page)
    shot(page, "editor", width)
    page.goto(live_site.url(FREE))
    reader_face = page.evaluate(
        "getComputedStyle(document.querySelector('.article-body')).fontFamily"
    )
    assert preview_face == reader_face and "serif" in reader_face, (preview_face, reader_face)

    # A refused publish ends on the article's page, not on the POST-only /publish URL.
    page.goto(live_site.url("/publisher/articles/record-wheat-harvest"))
    page.locator("#publish-button").click()
    page.wait_for_load_state()
    assert re.search(r"/publisher/articles/record-wheat-harvest#publishing$", page.url), page.url
    expect(page.locator("#publish-error")).to_contain_text("1 claim is contradicted")
    wide["/publisher/articles/record-wheat-harvest"] = overflow(page)
    shot(page, "publish_refused", width)
    page.reload()
    expect(page.locator("#publish-error")).to_have_count(0)  # a reload submits nothing

    assert not {p: w for p, w in wide.items() if w}, f"pages wider than {width}px: {wide}"
    assert not problems, problems
