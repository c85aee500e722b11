"""A reader in a real browser saves a card on the wallet page, switches auto top-up on,
and buys a dispatch with an empty wallet in one click: the card is charged off-session
and the dispatch is theirs in the same request.

Debian's chromium drives the app under gunicorn, which talks to localstripe; both run
as processes with a database of their own (tests/support/live.py), SQLite or, with
TEST_DATABASE_URL, PostgreSQL.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.support import live as live_support
from tests.support.live import LiveSite, fill_card, needs_chromium, sign_up
from tests.support.stripe_helpers import CARD_OK

pytestmark = [pytest.mark.browser, pytest.mark.e2e, needs_chromium]
browser = live_support.browser
live_site = live_support.live_site
page = live_support.page

ARTICLE = "/articles/harbour-cranes-go-electric"  # a $0.39 dispatch of the demo
FULL_TEXT = "What changed on the quay"
expect.set_options(timeout=20_000)


def test_a_reader_saves_a_card_and_buys_with_auto_topup(page: Any, live_site: LiveSite) -> None:
    sign_up(page, live_site, next_path="/wallet")
    expect(page.locator("#wallet-balance")).to_have_text("$0.00")
    expect(page.locator("#saved-card")).to_have_text("No card is saved.")

    fill_card(page, CARD_OK, mount="#saved-card-element")
    page.get_by_role("button", name="Save card").click()
    expect(page.locator("#saved-card")).to_contain_text("Visa ending in 4242")

    page.get_by_label("Auto top-up amount").fill("5.00")
    page.get_by_label("Monthly limit").fill("20.00")
    page.get_by_role("button", name="Save auto top-up").click()
    expect(page.locator(".flash")).to_have_text("Auto top-up is on.")
    expect(page.locator("#auto-topup-status")).to_contain_text("$5.00")

    page.goto(live_site.url(ARTICLE))
    page.get_by_role("button", name="Buy for $0.39").click()
    expect(page.locator(".flash")).to_have_text("It's yours. $4.61 left in your wallet.")
    expect(page.locator(".article-body")).to_contain_text(FULL_TEXT)

    page.get_by_role("link", name="Wallet").click()
    expect(page.locator("#wallet-balance")).to_have_text("$4.61")
    expect(page.locator("#auto-topup-status")).to_contain_text("($5.00 so far)")
    assert "every ledger invariant holds" in live_site.flask("audit")
