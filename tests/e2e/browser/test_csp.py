"""The Content-Security-Policy in a real browser: the pages and the card top-up work under
it (Stripe.js stand-in, 3-D Secure box, our fetches), and nothing is refused."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import migrated_database
from tests.support.live import launch_chromium, needs_chromium
from tests.support.servers import BIN, ROOT, AppServer, LocalStripe
from tests.support.stripe_helpers import WEBHOOK_SECRET

READER = ("reader@dispatch.example", "reader-demo-2026")
ARTICLE = "harbour-cranes-go-electric"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    needs_chromium,
]


@pytest.fixture()
def site(tmp_path: Path, artifacts: Path, localstripe: LocalStripe) -> Iterator[AppServer]:
    env = {
        "DATABASE_URL": migrated_database("sqlite", tmp_path),
        "SECRET_KEY": "browser-secret",
        "STRIPE_SECRET_KEY": "sk_test_dispatch",
        "STRIPE_PUBLISHABLE_KEY": "pk_test_dispatch",
        "STRIPE_API_BASE": localstripe.base,
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
    }
    server = AppServer(artifacts, env, workers=1, name="csp-browser")
    seeded = subprocess.run(
        [str(BIN / "flask"), "--app", "app", "seed-demo"],
        cwd=ROOT,
        env=server.env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert seeded.returncode == 0, seeded.stderr.decode()
    server.start()
    yield server
    server.stop()


def test_pages_and_a_card_top_up_run_under_the_csp(site: AppServer) -> None:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    refused: list[str] = []
    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            page = browser.new_page()
            page.on(
                "console",
                lambda msg: (
                    refused.append(msg.text) if "Content Security Policy" in msg.text else None
                ),
            )
            page.goto(f"{site.base}/articles/{ARTICLE}")
            assert page.locator('script[type="application/ld+json"]').count() == 1
            page.goto(f"{site.base}/login")
            page.fill("#email", READER[0])
            page.fill("#password", READER[1])
            page.click("button[type=submit].button")
            page.wait_for_url(f"{site.base}/")
            page.goto(f"{site.base}/wallet?amount=500")
            page.wait_for_selector("#card-element input[placeholder=number]", timeout=10_000)
            assert page.locator("#wallet-balance").text_content() == "$0.00"
            for field, value in (
                ("number", "4242424242424242"),
                ("exp_month", "12"),
                ("exp_year", "34"),
                ("cvc", "123"),
                ("postal_code", "12345"),
            ):
                page.fill(f"#card-element input[placeholder={field}]", value)
            page.click("#topup-submit")
            # A locator, not wait_for_function: the CSP refuses Playwright's string eval.
            page.locator("#wallet-balance", has_text="$5.00").wait_for(timeout=30_000)
            assert refused == []
            # The policy bites: an injected inline script is refused, and we would see it.
            with (
                page.expect_console_message(
                    lambda msg: "Content Security Policy" in msg.text, timeout=5_000
                ),
                contextlib.suppress(PlaywrightError),
            ):
                page.add_script_tag(content="document.title = 'injected'")
            assert page.title() != "injected"
        finally:
            browser.close()
    assert len(refused) == 1 and "inline script" in refused[0], refused
