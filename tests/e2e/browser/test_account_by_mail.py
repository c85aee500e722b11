"""A reader's account lifecycle by mail, in chromium, against the app as production runs it:
gunicorn (2 workers), localstripe, PostgreSQL when configured, MAIL_URL pointing at a real
SMTP server (aiosmtpd) and a `flask send-mail --forever` process delivering the outbox.

The reader signs in by link only (no password ever typed), tops up, buys, receives the
receipt, resets the password from the mail, and the old browser session stops working.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import text

from tests.support import live as live_support
from tests.support.live import LiveSite, fill_card, needs_chromium, running_site
from tests.support.servers import MailSender
from tests.support.smtp import SMTPServer, text_part
from tests.support.stripe_helpers import CARD_OK

pytestmark = [pytest.mark.browser, pytest.mark.e2e, needs_chromium]
browser = live_support.browser
page = live_support.page

ARTICLE = "/articles/harbour-cranes-go-electric"  # a $0.39 dispatch of the demo
FULL_TEXT = "What changed on the quay"
LINK = re.compile(r"http://127\.0\.0\.1:\d+/\S+")
expect.set_options(timeout=20_000)


@pytest.fixture(scope="module")
def mail_site(
    tmp_path_factory: pytest.TempPathFactory, smtp_server: SMTPServer
) -> Iterator[LiveSite]:
    log_dir = tmp_path_factory.mktemp("mail-live")
    env = {
        "MAIL_URL": smtp_server.url,
        "MAIL_FROM": "Dispatch <news@dispatch.example>",
        "SELLER_NAME": "Dispatch Media Ltd",
        "SELLER_ADDRESS": "1 Press Row, London",
        "SELLER_TAX_ID": "GB123456789",
    }
    with running_site(log_dir, env=env) as site:
        sender = MailSender(log_dir, site.app_env())
        sender.start()
        try:
            yield site
        finally:
            sender.stop()


def mail_to(server: SMTPServer, address: str, subject: str, seconds: float = 30) -> EmailMessage:
    def arrived(messages: list[EmailMessage]) -> bool:
        return any(str(m["To"]) == address and subject in str(m["Subject"]) for m in messages)

    messages = server.wait_for(arrived, seconds=seconds)
    return next(m for m in messages if str(m["To"]) == address and subject in str(m["Subject"]))


def link_in(message: EmailMessage) -> str:
    found = LINK.search(text_part(message))
    assert found, text_part(message)
    return found.group(0)


def flash(page: Any) -> Any:
    return page.locator(".flash")


def test_a_reader_lives_by_mail_links_alone(
    page: Any, browser: Any, mail_site: LiveSite, smtp: SMTPServer
) -> None:
    mail_server = smtp
    email = "link-only-reader@example.org"
    page.goto(mail_site.url("/login"))
    page.get_by_role("link", name="Email me a sign-in link instead").click()
    page.get_by_label("Email").fill(email)
    page.get_by_role("button", name="Email me a link").click()
    expect(page.get_by_role("status")).to_contain_text("sign-in link is on its way")

    invitation = mail_to(mail_server, email, "Create your account")
    page.goto(link_in(invitation))
    page.get_by_role("button", name="Create my account and sign in").click()
    expect(flash(page)).to_have_text("You are signed in.")

    page.goto(mail_site.url("/wallet"))
    fill_card(page, CARD_OK)
    page.get_by_role("button", name="Pay $5.00").click()
    expect(flash(page)).to_have_text("$5.00 added to your wallet.")
    page.goto(mail_site.url(ARTICLE))
    page.get_by_role("button", name="Buy for $0.39").click()
    expect(page.locator(".article-body")).to_contain_text(FULL_TEXT)

    receipt = mail_to(mail_server, email, "Receipt")
    text = text_part(receipt)
    for expected in ("Dispatch Media Ltd", "GB123456789", "$5.00", "Stripe charge: ch_"):
        assert expected in text, (expected, text)
    assert "news@dispatch.example" in str(receipt["From"])
    page.goto(link_in(receipt))
    expect(page.get_by_role("heading", name=re.compile("^Receipt R-"))).to_be_visible()
    expect(page.locator(".receipt")).to_contain_text("1 Press Row, London")

    # Another browser resets the password from the mail; the first one is logged out.
    other = browser.new_context()
    try:
        second = other.new_page()
        second.goto(mail_site.url("/password/reset"))
        second.get_by_label("Email").fill(email)
        second.get_by_role("button", name="Email me a reset link").click()
        reset = mail_to(mail_server, email, "Reset your password")
        second.goto(link_in(reset))
        second.get_by_label("New password").fill("a fresh reader password")
        second.get_by_role("button", name="Set the new password").click()
        expect(second.locator(".flash")).to_contain_text("every other browser is logged out")
        expect(second.get_by_role("heading", name="Your account", exact=True)).to_be_visible()
    finally:
        other.close()

    page.goto(mail_site.url("/wallet"))
    page.wait_for_url(re.compile(r"/login"))
    assert page.context.request.get(mail_site.url("/api/v1/me")).status == 401
    # And the password from the mail works.
    page.goto(mail_site.url("/login"))
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill("a fresh reader password")
    page.get_by_role("button", name="Log in").click()
    page.goto(mail_site.url("/library"))
    expect(page.locator("main")).to_contain_text("unplugged its diesel cranes")
    assert "every ledger invariant holds" in mail_site.flask("audit")


def test_mail_queued_while_the_mail_server_is_down_arrives_once_it_is_back(
    page: Any, mail_site: LiveSite, smtp: SMTPServer
) -> None:
    mail_server = smtp
    mail_server.stop()
    try:
        page.goto(mail_site.url("/password/reset"))
        page.get_by_label("Email").fill("outage@example.org")
        page.get_by_role("button", name="Email me a reset link").click()
        expect(page.get_by_role("status")).to_be_visible()
        page.wait_for_timeout(1500)  # the sender tries and fails meanwhile
    finally:
        mail_server.start()
    # The first retry comes 30 s after the failed attempt (backoff).
    message = mail_to(mail_server, "outage@example.org", "Password reset", seconds=90)
    page.wait_for_timeout(2000)  # would a second copy follow?
    assert len(mail_server.inbox.to("outage@example.org")) == 1
    engine = mail_site.engine()
    try:
        with engine.connect() as conn:
            attempts, status, message_id = conn.execute(
                text(
                    "SELECT attempts, status, message_id FROM mail_outbox"
                    " WHERE to_address = 'outage@example.org'"
                )
            ).one()
    finally:
        engine.dispose()
    assert attempts >= 2, "the sender never met the outage"
    assert (status, message_id) == ("sent", message["Message-ID"])
