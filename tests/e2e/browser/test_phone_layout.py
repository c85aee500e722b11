"""Phone-width layout in a real browser: no page is wider than a 390px screen."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import live as live_support
from tests.support.live import SCREENSHOTS, LiveSite, needs_chromium

pytestmark = [pytest.mark.browser, pytest.mark.e2e, needs_chromium]
browser = live_support.browser
live_site = live_support.live_site
page = live_support.page

PHONE = 390
PUBLIC = ["/", "/articles/night-trains-return", "/verification", "/signup", "/api/docs"]
PUBLISHER = ["/publisher", "/publisher/articles/new", "/publisher/sales", "/publisher/tokens"]


def page_width(page: Any, url: str) -> int:
    page.goto(url)
    return int(page.evaluate("document.documentElement.scrollWidth"))


def test_no_page_overflows_a_phone_screen(page: Any, live_site: LiveSite) -> None:
    page.set_viewport_size({"width": PHONE, "height": 800})
    wide = {path: w for path in PUBLIC if (w := page_width(page, live_site.base + path)) > PHONE}
    page.goto(live_site.base + "/login")
    page.fill("#email", "editor@dispatch.example")
    page.fill("#password", "editor-demo-2026")
    page.click("main button[type=submit]")
    for path in PUBLISHER:
        if (w := page_width(page, live_site.base + path)) > PHONE:
            wide[path] = w
    page.screenshot(path=str(SCREENSHOTS / "ux-phone-tokens.png"), full_page=True)
    assert not wide, f"pages wider than {PHONE}px: {wide}"
