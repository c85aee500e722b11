"""The publisher's day in a real browser: write, get refused, fix, publish, price, sell.

The app runs under gunicorn on its own SQLite file; a reader buys through the API with
a wallet funded by a signed `payment_intent.succeeded` webhook, as Stripe would send.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from alembic import command

from dispatch_pay.cli import alembic_config
from models.base import build_engine
from tests.support.faults import committing_session
from tests.support.live import SCREENSHOTS, launch_chromium, needs_chromium
from tests.support.servers import BIN, ROOT, AppServer
from tests.support.stripe_helpers import (
    WEBHOOK_SECRET,
    event,
    payment_intent_obj,
    recorded_topup,
    signed,
)

EDITOR = ("editor@dispatch.test", "editor-browser-pass")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    needs_chromium,
]


def report(*claims: tuple[str, str]) -> str:
    return json.dumps(
        {
            "verifier": "newsroom-verifier",
            "checked_at": "2026-11-24T09:00:00Z",
            "claims": [
                {
                    "claim": text,
                    "verdict": verdict,
                    "sources": [{"url": "https://stats.example.org/harbour", "title": "Port"}],
                    "note": "",
                }
                for text, verdict in claims
            ],
        },
        indent=2,
    )


def api(base: str, method: str, path: str, body: Any = None, **headers: str) -> Any:
    data = body if isinstance(body, bytes) else None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        base + path,
        data=data,
        method=method,
        headers={"Content-Type": "application/json", **headers},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read() or b"null")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    workdir = tmp_path_factory.mktemp("browser")
    url = f"sqlite:///{workdir / 'app.sqlite'}"
    command.upgrade(alembic_config(url), "head")
    env = {
        "DATABASE_URL": url,
        "SECRET_KEY": "browser-test-secret",
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "FLASK_ENV": "development",
    }
    for name in ("STRIPE_SECRET_KEY", "STRIPE_PUBLISHABLE_KEY", "STRIPE_API_BASE"):
        env[name] = ""
    created = subprocess.run(
        [
            str(BIN / "flask"),
            "--app",
            "app",
            "create-publisher",
            EDITOR[0],
            "--password",
            EDITOR[1],
        ],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert created.returncode == 0, created.stderr
    app = AppServer(workdir, env, workers=1, name="publisher-browser")
    app.start()
    yield app
    app.stop()


def fund_reader(server: AppServer, reader_id: int, amount: int) -> None:
    """Stripe tells us a top-up (recorded by the app) succeeded; the webhook credits it."""
    engine = build_engine(server.env["DATABASE_URL"])
    try:
        with committing_session(engine):
            reference = recorded_topup(reader_id, amount)
    finally:
        engine.dispose()
    obj = payment_intent_obj(f"pi_browser_{reader_id}", amount, reader_id, reference=reference)
    payload, headers = signed(event("payment_intent.succeeded", obj))
    status, body = api(server.base, "POST", "/webhooks/stripe", payload, **headers)
    assert (status, body["outcome"]) == (200, "credited")


def test_publisher_writes_is_refused_fixes_publishes_prices_and_sees_the_sale(
    server: AppServer,
) -> None:
    from playwright.sync_api import expect, sync_playwright

    base = server.base
    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(15_000)
        try:
            # Log in and open the dashboard from the header link.
            page.goto(f"{base}/login")
            page.fill("input[name=email]", EDITOR[0])
            page.fill("input[name=password]", EDITOR[1])
            page.click("form button[type=submit]")
            page.click("header >> text=Dashboard")
            expect(page).to_have_url(f"{base}/publisher")

            # Write a dispatch, preview it on the server, save the draft.
            page.click(".pub-nav >> text=New dispatch")
            page.fill("#title", "Harbour traffic doubled")
            page.fill("#teaser", "The port's own numbers, checked.")
            page.fill("#body", "Ship calls **doubled** in a year.\n\n- 2025: 410\n- 2026: 820")
            page.click("button[value=preview]")
            expect(page.locator("#preview-body strong")).to_have_text("doubled")
            page.click("button[value=save]")
            expect(page).to_have_url(f"{base}/publisher/articles/harbour-traffic-doubled")

            # A report with a contradicted claim: publishing is refused, the claim shown.
            wrong = "Ship calls doubled between 2025 and 2026."
            page.fill(
                "#report_json",
                report(("The port has 12 berths.", "supported"), (wrong, "contradicted")),
            )
            page.click("#attach-report")
            expect(page.locator(".flash")).to_contain_text("Report attached")
            page.click("#publish-button")
            expect(page.locator("#publish-error")).to_contain_text("Publishing refused")
            expect(page.locator(".blocked-claims")).to_contain_text(wrong)
            expect(page.locator(".blocked-claims")).not_to_contain_text("12 berths")
            page.screenshot(path=str(SCREENSHOTS / "publisher-article.png"), full_page=True)

            # The verifier checks again after the fix; the new report is clean.
            page.fill(
                "#report_json",
                report(("The port has 12 berths.", "supported"), (wrong, "supported")),
            )
            page.click("#attach-report")
            expect(page.locator("#blocked")).to_have_count(0)
            page.click("#publish-button")
            expect(page.locator(".flash")).to_contain_text("is live")
            expect(page.locator("#revisions .live-row")).to_contain_text("1")

            # A new price, for future purchases.
            page.fill("#price-input", "0.49")
            page.click("#price button[type=submit]")
            expect(page.locator("#price-history")).to_contain_text("$0.49")
            expect(page.locator("#price-history")).to_contain_text(EDITOR[0])

            # A reader tops up (Stripe's webhook) and buys through the API.
            status, signup = api(
                base,
                "POST",
                "/api/v1/readers",
                {"email": "buyer@dispatch.test", "password": "buyer-password-1"},
            )
            assert status == 201
            fund_reader(server, signup["reader"]["id"], 500)
            status, bought = api(
                base,
                "POST",
                "/api/v1/articles/harbour-traffic-doubled/purchase",
                b"",
                Authorization=f"Bearer {signup['token']}",
            )
            assert status == 201
            assert bought["purchase"]["price"] == {"amount": 49, "currency": "usd"}

            # The publisher sees it in the sales table and the chart.
            page.click(".pub-nav >> text=Sales")
            row = page.locator('#sales-table tr[data-slug="harbour-traffic-doubled"]')
            expect(row).to_contain_text("$0.49")
            expect(row.locator("td").nth(1)).to_have_text("1")
            expect(page.locator("#total-purchases")).to_have_text("1")
            bar = page.locator('.revenue-chart rect[data-amount="49"]')
            expect(bar).to_have_count(1)
            page.screenshot(path=str(SCREENSHOTS / "publisher-sales.png"), full_page=True)

            page.click(".pub-nav >> text=Articles")
            dashboard_row = page.locator('#articles tr[data-slug="harbour-traffic-doubled"]')
            expect(dashboard_row.locator(".sales-count")).to_have_text(re.compile(r"^\s*1"))
            expect(dashboard_row.locator(".revenue")).to_have_text("$0.49")
            expect(page.locator('.revenue-chart rect[data-amount="49"]')).to_have_count(1)
            page.screenshot(path=str(SCREENSHOTS / "publisher-dashboard.png"), full_page=True)
        finally:
            browser.close()
