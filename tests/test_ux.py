"""What a reader or publisher sees when there is nothing to show yet, and other page texts."""

from __future__ import annotations

from flask.testing import FlaskClient

from tests.factories import make_user
from tests.publisher_support import log_in


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
