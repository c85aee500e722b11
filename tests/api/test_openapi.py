"""The OpenAPI document: complete, valid, built from the route declarations; /api/docs."""

from __future__ import annotations

import re
from typing import Any

import pytest
import schemathesis
from flask import Flask
from flask.testing import FlaskClient

from dispatch_pay.api import openapi
from dispatch_pay.api.openapi import AUTOMATIC_METHODS, api_rules, openapi_path

HTTP_METHODS = {"get", "put", "post", "patch", "delete"}


def documented(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (path, method.upper())
        for path, item in doc["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def test_every_api_route_and_method_is_documented(client: FlaskClient, app: Flask) -> None:
    doc = client.get("/api/openapi.json").json
    assert doc is not None
    routes = {
        (openapi_path(rule), method)
        for rule in api_rules(app)
        for method in (rule.methods or set()) - AUTOMATIC_METHODS
    }
    assert len(routes) >= 19
    missing = routes - documented(doc)
    assert not missing, f"routes missing from the OpenAPI document: {sorted(missing)}"
    assert documented(doc) == routes  # and nothing that does not exist


def test_the_document_is_valid_openapi_3(client: FlaskClient) -> None:
    doc = client.get("/api/openapi.json").json
    assert doc is not None
    assert doc["openapi"].startswith("3.")
    schemathesis.openapi.from_dict(doc).validate()  # the official meta-schema


def test_an_invalid_document_would_be_caught() -> None:
    """The validation above has teeth: a response without a description is refused."""
    broken = {
        "openapi": "3.1.0",
        "info": {"title": "x", "version": "1"},
        "paths": {"/x": {"get": {"responses": {"200": {"content": {}}}}}},
    }
    with pytest.raises(Exception, match="description"):
        schemathesis.openapi.from_dict(broken).validate()


def test_bodies_and_errors_come_from_the_route_schemas(client: FlaskClient) -> None:
    doc = client.get("/api/openapi.json").json
    assert doc is not None
    schemas = doc["components"]["schemas"]
    topup = doc["paths"]["/api/v1/wallet/topups"]["post"]
    assert topup["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/TopUpRequest"
    }
    assert schemas["TopUpRequest"]["required"] == ["amount"]
    assert schemas["TopUpRequest"]["properties"]["currency"]["enum"] == ["eur", "gbp", "usd"]
    assert {p["name"] for p in topup["parameters"]} == {"Idempotency-Key"}
    assert {"201", "400", "401", "402", "409", "422", "429", "503"} <= set(topup["responses"])
    article = doc["paths"]["/api/v1/articles/{slug}"]["get"]["responses"]
    offer = article["402"]["content"]["application/json"]["schema"]
    assert offer == {"$ref": "#/components/schemas/PaymentRequired"}
    assert set(schemas["PaymentRequired"]["required"]) == {"error", "offer", "article"}
    assert "body_html" not in schemas["LockedArticle"]["properties"]
    assert "body_html" in schemas["FullArticle"]["properties"]
    purchase = doc["paths"]["/api/v1/articles/{slug}/purchase"]["post"]["responses"]
    assert purchase["402"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/InsufficientFunds"
    )
    assert schemas["Error"]["required"] == ["error"]
    assert set(schemas["ErrorDetail"]["properties"]) == {"code", "message", "fields"}


def test_security_is_a_bearer_token(client: FlaskClient) -> None:
    doc = client.get("/api/openapi.json").json
    assert doc is not None
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An API token (dp_…).",
    }
    wallet = doc["paths"]["/api/v1/wallet"]["get"]
    assert {"bearerAuth": []} in wallet["security"] and {} not in wallet["security"]
    signup = doc["paths"]["/api/v1/readers"]["post"]
    assert signup["security"] == [{}]
    publish = doc["paths"]["/api/v1/articles/{slug}/publish"]["post"]
    assert "403" in publish["responses"]


def test_path_parameters_follow_the_url_converters(client: FlaskClient) -> None:
    doc = client.get("/api/openapi.json").json
    assert doc is not None
    (token_id,) = doc["paths"]["/api/v1/tokens/{token_id}"]["parameters"]
    assert token_id["schema"] == {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}
    (slug,) = doc["paths"]["/api/v1/articles/{slug}"]["parameters"]
    assert slug["schema"]["type"] == "string" and slug["required"] is True


def test_the_document_is_built_once_per_process(
    client: FlaskClient, app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    app.extensions.pop(openapi.DOCUMENT_KEY, None)
    calls = []
    real = openapi.build_document

    def counting(app: Flask) -> dict[str, Any]:
        calls.append(app)
        return real(app)

    monkeypatch.setattr(openapi, "build_document", counting)
    first = client.get("/api/openapi.json").json
    second = client.get("/api/openapi.json").json
    client.get("/api/docs")
    assert first == second
    assert len(calls) == 1


def test_an_undeclared_route_is_missing_from_the_document(app: Flask) -> None:
    """The completeness test above depends on this: nothing documents a route by itself."""
    probe = Flask(__name__)
    probe.add_url_rule("/api/v1/probe", "probe", lambda: "x")
    assert "/api/v1/probe" not in openapi.build_document(probe)["paths"]


def test_the_docs_page_shows_every_route_and_needs_nothing_from_outside(
    client: FlaskClient,
) -> None:
    doc = client.get("/api/openapi.json").json
    assert doc is not None
    page = client.get("/api/docs")
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    for path, method in documented(doc):
        assert f"{method}</span> <code>{path}</code>" in html, (method, path)
    for name in doc["components"]["schemas"]:
        assert f'id="schema-{name}"' in html
    # Parameters, bodies and responses are shown.
    assert "Idempotency-Key (header)" in html
    assert 'href="#schema-TopUpRequest"' in html
    assert 'href="#schema-PaymentRequired"' in html
    # Nothing is loaded from another host: no scripts at all, styles and links local.
    assert "<script" not in html
    for url in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert url.startswith(("/", "#", "http://dispatch.test/")), url


def test_the_footer_links_to_the_api_docs(client: FlaskClient) -> None:
    html = client.get("/").get_data(as_text=True)
    assert 'href="/api/docs"' in html


def test_a_route_can_answer_in_other_media_types_too() -> None:
    """For a report with `?format=csv`: JSON and CSV are both documented answers."""
    probe = Flask(__name__)
    view = openapi.operation(
        "Sales", auth="publisher", response=openapi.ErrorSchema, media_types=("text/csv",)
    )(lambda: "x")
    probe.add_url_rule("/api/v1/publisher/report", "probe_api.report", view)
    doc = openapi.build_document(probe)
    content = doc["paths"]["/api/v1/publisher/report"]["get"]["responses"]["200"]["content"]
    assert content == {
        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}},
        "text/csv": {"schema": {"type": "string"}},
    }
    schemathesis.openapi.from_dict(doc).validate()
