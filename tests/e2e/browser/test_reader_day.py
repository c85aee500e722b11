"""A reader in a real browser: sign up, top up through Stripe.js, buy in one click, read.

Debian's chromium drives the app under gunicorn, which talks to localstripe; both run
as processes with a database of their own (tests/support/live.py).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.support import live as live_support
from tests.support.live import SCREENSHOTS, LiveSite, fill_card, needs_chromium, sign_up
from tests.support.stripe_helpers import CARD_3DS, CARD_DECLINED, CARD_OK

pytestmark = [pytest.mark.browser, pytest.mark.e2e, needs_chromium]
# The fixtures this module uses (pytest finds fixtures among a module's attributes).
browser = live_support.browser
live_site = live_support.live_site
page = live_support.page

ARTICLE = "/articles/harbour-cranes-go-electric"  # a $0.39 dispatch of the demo
FULL_TEXT = "What changed on the quay"  # a heading of its body, never in the teaser
expect.set_options(timeout=20_000)


def flash(page: Any) -> Any:
    return page.locator(".flash")


def expect_reading(page: Any) -> None:
    """The full text and its Verifier section, and no paywall."""
    expect(page.locator(".article-body")).to_contain_text(FULL_TEXT)
    expect(page.get_by_role("heading", name="Verifier")).to_be_visible()
    expect(page.locator("#verifier .claim")).to_have_count(4)
    expect(page.locator("#paywall")).to_have_count(0)


def test_a_new_reader_tops_up_with_a_card_buys_in_one_click_and_reads(
    page: Any, live_site: LiveSite
) -> None:
    sign_up(page, live_site, next_path="/wallet")
    expect(page.locator("#wallet-balance")).to_have_text("$0.00")

    fill_card(page, CARD_OK)
    page.get_by_role("button", name="Pay $5.00").click()
    expect(flash(page)).to_have_text("$5.00 added to your wallet.")
    expect(page.locator("#wallet-balance")).to_have_text("$5.00")
    expect(page.locator(".ledger tbody tr")).to_have_count(1)

    page.goto(live_site.url(ARTICLE))
    expect(page.locator(".article-body")).to_have_count(0)
    page.get_by_role("button", name="Buy for $0.39").click()
    expect(flash(page)).to_have_text("It's yours. $4.61 left in your wallet.")
    expect_reading(page)
    page.screenshot(path=SCREENSHOTS / "dispatch_browser_article.png", full_page=True)

    page.get_by_role("link", name="Wallet").click()
    expect(page.locator("#wallet-balance")).to_have_text("$4.61")
    expect(page.locator(".ledger tbody tr").first).to_contain_text("Purchase")
    expect(page.locator(".ledger tbody tr").first).to_contain_text("-$0.39")
    page.screenshot(path=SCREENSHOTS / "dispatch_browser_wallet.png", full_page=True)
    assert "every ledger invariant holds" in live_site.flask("audit")


def test_an_empty_wallet_tops_up_and_reads_in_one_go(page: Any, live_site: LiveSite) -> None:
    sign_up(page, live_site, next_path=ARTICLE)
    page.get_by_role("link", name="Top up $5.00 and read").click()
    expect(page.locator("#buy-notice")).to_contain_text("is bought for you straight away")

    fill_card(page, CARD_OK)
    page.get_by_role("button", name="Pay $5.00 and read").click()
    # No reload by hand: the page moves on to the article once the money is in.
    page.wait_for_url(re.compile(re.escape(ARTICLE) + "$"))
    expect(flash(page)).to_have_text(
        "$5.00 added to your wallet, and this dispatch is yours. $4.61 left."
    )
    expect_reading(page)
    page.screenshot(path=SCREENSHOTS / "dispatch_browser_topup_and_read.png", full_page=True)


def test_a_card_that_asks_for_3d_secure_is_finished_in_the_browser(
    page: Any, live_site: LiveSite
) -> None:
    sign_up(page, live_site, next_path="/wallet")
    page.get_by_text("$10.00").click()
    fill_card(page, CARD_3DS)
    page.get_by_role("button", name="Pay $10.00").click()
    expect(page.locator("#topup-message")).to_have_text(
        "Your bank asks you to confirm the payment…"
    )
    # localstripe's Stripe.js shows its own 3-D Secure dialog, as Stripe's would.
    page.get_by_role("button", name="Complete authentication").click()
    expect(flash(page)).to_have_text("$10.00 added to your wallet.")
    expect(page.locator("#wallet-balance")).to_have_text("$10.00")


def test_a_failed_3d_secure_check_says_so_and_charges_nothing(
    page: Any, live_site: LiveSite
) -> None:
    sign_up(page, live_site, next_path="/wallet")
    fill_card(page, CARD_3DS)
    page.get_by_role("button", name="Pay $5.00").click()
    page.get_by_role("button", name="Fail authentication").click()
    expect(page.locator("#topup-message")).to_contain_text("Nothing was charged")
    expect(page.locator("#topup-submit")).to_be_enabled()
    page.reload()
    expect(page.locator("#wallet-balance")).to_have_text("$0.00")


def test_a_declined_card_gets_a_clear_message_and_another_card_works(
    page: Any, live_site: LiveSite
) -> None:
    sign_up(page, live_site, next_path="/wallet")
    page.get_by_role("button", name="Pay $5.00").click()
    expect(page.locator("#topup-message")).to_have_text(
        "Enter your card number, expiry date and CVC."
    )

    fill_card(page, CARD_DECLINED)
    page.get_by_role("button", name="Pay $5.00").click()
    expect(page.locator("#topup-message")).to_have_text(
        "Your card was declined. Nothing was charged; try another card."
    )
    expect(page.locator("#topup-message")).to_have_class(re.compile(r"\berror\b"))
    page.screenshot(path=SCREENSHOTS / "dispatch_browser_declined.png", full_page=True)

    page.reload()
    expect(page.locator("#wallet-balance")).to_have_text("$0.00")
    fill_card(page, CARD_OK)
    page.get_by_role("button", name="Pay $5.00").click()
    expect(page.locator("#wallet-balance")).to_have_text("$5.00")


def test_pressing_pay_again_after_a_lost_answer_charges_once(
    page: Any, live_site: LiveSite
) -> None:
    """The server charged the card but its answer never reached the browser."""
    sign_up(page, live_site, next_path="/wallet")
    lost: list[str] = []

    def lose_the_first_answer(route: Any) -> None:
        if lost:
            route.continue_()
            return
        answer = route.fetch()  # the request reaches the app, which charges the card...
        lost.append(answer.json()["topup"]["id"])
        route.abort("connectionreset")  # ...and the browser never hears back

    page.route("**/api/v1/wallet/topups", lose_the_first_answer)
    fill_card(page, CARD_OK)
    page.get_by_role("button", name="Pay $5.00").click()
    expect(page.locator("#topup-message")).to_contain_text("you will not be charged twice")

    page.get_by_role("button", name="Pay $5.00").click()
    expect(flash(page)).to_have_text("$5.00 added to your wallet.")
    expect(page.locator("#wallet-balance")).to_have_text("$5.00")
    expect(page.locator(".ledger tbody tr")).to_have_count(1)
    assert page.url.endswith("/wallet?currency=usd")
    assert len(lost) == 1
