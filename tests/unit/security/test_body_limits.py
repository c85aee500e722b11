"""Oversized request bodies: 413 in the contract's shape (API, webhook) or a page (HTML)."""

from __future__ import annotations

import io

import pytest
from flask import Flask
from flask.testing import FlaskClient

from dispatch_pay.extensions import limiter
from dispatch_pay.payments.gateway import WEBHOOKS_KEY
from dispatch_pay.payments.stripe_gateway import StripeWebhooks
from tests.support.factories import bearer, make_token, make_user
from tests.support.web import csrf_token_from, json_error, table_counts

TOO_BIG = b"x" * (1024 * 1024 + 1)


def test_api_refuses_an_oversized_body_with_the_contract_error(
    app: Flask, client: FlaskClient
) -> None:
    assert app.config["MAX_CONTENT_LENGTH"] == 1024 * 1024
    headers = bearer(make_token(make_user()))
    before = table_counts()
    body = b'{"email": "big@example.com", "password": "' + TOO_BIG + b'"}'
    for path in ("/api/v1/readers", "/api/v1/tokens", "/api/v1/wallet/topups"):
        response = client.post(path, data=body, content_type="application/json", headers=headers)
        assert response.status_code == 413, path
        assert json_error(response)["code"] == "payload_too_large"
    assert table_counts() == before
    # The rate limiter read the same body for its per-email key: that must not look to
    # it like a storage failure (which would move this process's counters to memory).
    assert limiter._storage_dead is False


def test_webhook_refuses_an_oversized_body_with_the_contract_error(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(app.extensions, WEBHOOKS_KEY, StripeWebhooks("whsec_size_test"))
    response = client.post(
        "/webhooks/stripe",
        data=TOO_BIG,
        content_type="application/json",
        headers={"Stripe-Signature": "t=1,v1=00"},
    )
    assert response.status_code == 413
    assert json_error(response)["code"] == "payload_too_large"


def test_a_streamed_body_is_cut_off_at_the_limit(client: FlaskClient) -> None:
    """Chunked bodies have no Content-Length to refuse up front: Werkzeug reads at most
    MAX_CONTENT_LENGTH bytes of them, so the truncated JSON is refused as malformed."""
    before = table_counts()
    body = b'{"email": "big@example.com", "password": "' + TOO_BIG + b'"}'
    response = client.post(
        "/api/v1/readers",
        input_stream=io.BytesIO(body),
        content_type="application/json",
        headers={"Transfer-Encoding": "chunked"},
        # As gunicorn marks a chunked body it has de-chunked.
        environ_base={"wsgi.input_terminated": True},
    )
    assert response.status_code in (400, 413)
    assert json_error(response)["code"] in ("malformed_body", "payload_too_large")
    assert table_counts() == before


def test_html_forms_refuse_an_oversized_body_with_a_page(client: FlaskClient) -> None:
    before = table_counts()
    token = csrf_token_from(client, "/signup")
    for path in ("/signup", "/login"):
        response = client.post(
            path,
            data={"email": "big@example.com", "password": TOO_BIG.decode(), "csrf_token": token},
        )
        assert response.status_code == 413, path
        assert response.mimetype == "text/html"
        assert "The request body is too large." in response.get_data(as_text=True)
    assert table_counts() == before
