"""Attacks on the kept full page (catalog/owner_pages.py): each test here failed when
written, and shows a promise the kept page broke."""

from __future__ import annotations

from flask.testing import FlaskClient

from tests.support.factories import grant, make_article, make_user
from tests.support.wallet import fund
from tests.support.web import log_in

TEXT = "Words that only owners read."


def test_a_message_flashed_to_the_first_reader_is_not_kept_for_every_other_reader(
    client: FlaskClient,
) -> None:
    """The view reads (and so pops) the flashed messages while it renders, and only then
    asks whether the session holds flashed messages: a page that shows one reader's
    message ("It's yours. $9.61 left in your wallet.") is kept and sent to every other
    owner of the article, and to the first reader on every later visit."""
    article = make_article(body=TEXT, price=39)
    page = f"/articles/{article.slug}"
    buyer = make_user()
    fund(buyer, 1000)
    csrf = log_in(client, buyer)
    # The paywall's buy button: a redirect to the article, with a message for the buyer.
    bought = client.post(
        f"/articles/{article.slug}/buy",
        data={"csrf_token": csrf, "expected_amount": "39", "expected_currency": "usd"},
    )
    assert bought.status_code in (302, 303), bought.get_data(as_text=True)[:300]
    first = client.get(page).get_data(as_text=True)
    assert TEXT in first and "left in your wallet" in first  # the view shows it, once
    # Another owner of the article, on their own browser.
    other = client.application.test_client()
    owner = make_user()
    grant(owner, article)
    log_in(other, owner)
    for _ in range(2):
        html = other.get(page).get_data(as_text=True)
        assert TEXT in html
        assert "left in your wallet" not in html, "another reader's flashed message"
    # The buyer's own next visit: the message was shown once already.
    again = client.get(page).get_data(as_text=True)
    assert "left in your wallet" not in again
