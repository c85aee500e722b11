"""What a reader or publisher sees when there is nothing to show yet, and other page texts."""

from __future__ import annotations

import re

from flask.testing import FlaskClient

from tests.support.factories import make_article, make_user
from tests.support.wallet import fund
from tests.support.web import csrf_token_from, log_in


def test_sales_page_says_no_topups_instead_of_zero_and_a_dash(client: FlaskClient) -> None:
    log_in(client, make_user(role="publisher"))
    page = client.get("/publisher/sales").get_data(as_text=True).split('id="topups"')[1]
    assert "None in this period" in page
    assert "0: —" not in page


def test_every_page_starts_with_a_skip_link_to_the_main_content(client: FlaskClient) -> None:
    page = client.get("/").get_data(as_text=True)
    body = page.split("<body>", 1)[1].lstrip()
    assert body.startswith('<a class="skip-link" href="#content">Skip to content</a>')
    assert '<main class="page" id="content">' in page


def test_wallet_history_keeps_the_date_and_the_time_each_on_one_line(client: FlaskClient) -> None:
    reader = make_user()
    fund(reader, 500)
    log_in(client, reader)
    page = client.get("/wallet").get_data(as_text=True)
    history = page.split('class="ledger"', 1)[1]
    assert re.search(
        r'<time datetime="[^"]+"><span class="nowrap">\d{4}-\d\d-\d\d</span> '
        r'<span class="nowrap">\d\d:\d\d</span></time>',
        history,
    )


def test_signup_errors_are_tied_to_their_fields(client: FlaskClient) -> None:
    token = csrf_token_from(client, "/signup")
    page = client.post(
        "/signup", data={"email": "not-an-email", "password": "short", "csrf_token": token}
    ).get_data(as_text=True)
    for name in ("email", "password"):
        field = re.search(rf'<input id="{name}"[^>]*>', page)
        assert field is not None
        assert 'aria-invalid="true"' in field.group(0)
        assert f'aria-describedby="{name}-error"' in field.group(0)
        assert page.count(f'id="{name}-error"') == 1


def test_a_blocked_publish_button_is_described_by_the_reasons(client: FlaskClient) -> None:
    editor = make_user(role="publisher")
    blocked = make_article(verdicts=("supported", "contradicted"), published=False, author=editor)
    ready = make_article(verdicts=("supported",), published=False, author=editor)
    log_in(client, editor)

    def button(slug: str) -> str:
        page = client.get(f"/publisher/articles/{slug}").get_data(as_text=True)
        found = re.search(r'<button [^>]*id="publish-button"[^>]*>', page)
        assert found is not None
        return found.group(0)

    assert 'aria-describedby="blocked"' in button(blocked.slug)
    assert "aria-describedby" not in button(ready.slug)


def test_the_navigation_fits_the_role(client: FlaskClient) -> None:
    """Readers get their wallet and library; publishers, who read everything and buy
    nothing, get the dashboard instead."""
    log_in(client, make_user())
    nav = client.get("/").get_data(as_text=True).split('class="site-nav"', 1)[1].split("</nav>")[0]
    assert ">Wallet<" in nav and ">Library<" in nav and ">Dashboard<" not in nav
    client.post("/logout", data={"csrf_token": csrf_token_from(client, "/")})
    log_in(client, make_user(role="publisher"))
    nav = client.get("/").get_data(as_text=True).split('class="site-nav"', 1)[1].split("</nav>")[0]
    assert ">Dashboard<" in nav and ">Wallet<" not in nav and ">Library<" not in nav
