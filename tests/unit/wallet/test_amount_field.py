"""The wallet page's "Other amount" field: checked as the top-up API checks it (issue 17)."""

from __future__ import annotations

import re

from flask.testing import FlaskClient

from tests.support.factories import bearer, make_token, make_user
from tests.support.web import log_in

RANGE = "A top-up is between $0.50 and $100.00."


def amount_error(page: str) -> str:
    match = re.search(r'<p class="field-error" id="amount-error"[^>]*>(.*?)</p>', page, re.S)
    assert match, "the amount field's error line is missing"
    return match.group(1).strip()


def test_the_page_offers_an_amount_field_beside_the_presets(stripe_client: FlaskClient) -> None:
    log_in(stripe_client, make_user())
    page = stripe_client.get("/wallet").get_data(as_text=True)
    form = page.split('id="topup-form"')[1].split("</form>")[0]
    assert form.count('name="amount"') == 3  # $2, $5, $10
    assert 'id="amount-other" name="other"' in form
    assert RANGE in form and 'data-range-message="' + RANGE + '"' in page
    assert amount_error(page) == ""


def test_an_amount_below_the_minimum_is_refused_in_the_form_with_the_apis_words(
    stripe_client: FlaskClient,
) -> None:
    reader = make_user()
    log_in(stripe_client, reader)
    response = stripe_client.get("/wallet?other=0.10")
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert amount_error(page) == RANGE
    assert 'value="0.10"' in page and 'aria-invalid="true"' in page
    # The API says the very same thing for the same amount.
    api = stripe_client.post(
        "/api/v1/wallet/topups",
        json={"amount": 10, "currency": "usd"},
        headers=bearer(make_token(reader)),
    )
    assert api.status_code == 422
    assert api.get_json()["error"]["fields"]["amount"] == [RANGE]


def test_too_much_and_not_a_number_are_refused_too(stripe_client: FlaskClient) -> None:
    log_in(stripe_client, make_user())
    too_much = stripe_client.get("/wallet?other=100.01")
    assert too_much.status_code == 422 and amount_error(too_much.get_data(as_text=True)) == RANGE
    garbage = stripe_client.get("/wallet?other=7,5")
    assert garbage.status_code == 422
    assert amount_error(garbage.get_data(as_text=True)) == "Enter an amount like 7.50."


def test_a_valid_amount_is_chosen_and_the_button_says_it(stripe_client: FlaskClient) -> None:
    log_in(stripe_client, make_user())
    response = stripe_client.get("/wallet?other=7.50")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Pay $7.50" in page and 'value="7.50"' in page
    assert "checked" not in page.split('class="presets"')[1].split("</div>")[0]
    assert amount_error(page) == ""


def test_odd_input_is_refused_without_a_server_error(stripe_client: FlaskClient) -> None:
    log_in(stripe_client, make_user())
    for text in ["-1", "NaN", "1e3", "0.505", "１０", "7.5.0", "$ ", "9" * 40]:
        response = stripe_client.get("/wallet", query_string={"other": text})
        assert response.status_code == 422, text
        assert amount_error(response.get_data(as_text=True)), text
    # A NUL byte is refused before any page runs (the app's input guard), also a 422.
    assert stripe_client.get("/wallet", query_string={"other": "1\x00"}).status_code == 422
    # "$7.50" as people type it is fine; so is a blank field (the preset counts).
    assert stripe_client.get("/wallet", query_string={"other": "$7.50"}).status_code == 200
    assert stripe_client.get("/wallet", query_string={"other": "  "}).status_code == 200
