"""402 offers that machines read: x402 PAYMENT-REQUIRED, decoded with the official SDK."""

from __future__ import annotations

import base64
import json

from flask.testing import FlaskClient
from x402.http.utils import decode_payment_required_header
from x402.schemas import PaymentRequired

from tests.support.factories import bearer, make_agent_token, make_article, make_token, make_user
from tests.support.wallet import fund


def test_the_402_of_an_article_carries_an_x402_v2_offer(client: FlaskClient) -> None:
    article = make_article(price=39, title="Harbour dues")
    response = client.get(f"/api/v1/articles/{article.slug}")
    assert response.status_code == 402
    header = response.headers["PAYMENT-REQUIRED"]

    decoded = decode_payment_required_header(header)  # the SDK's own decoder and model
    assert isinstance(decoded, PaymentRequired)
    assert decoded.x402_version == 2
    assert decoded.resource is not None
    assert decoded.resource.url == f"http://dispatch.test/api/v1/articles/{article.slug}"
    assert decoded.resource.description == "Harbour dues"
    assert decoded.resource.mime_type == "application/json"
    [accept] = decoded.accepts
    assert accept.scheme == "dispatch-wallet"
    assert accept.amount == "39"
    assert accept.asset == "usd"
    assert accept.network == "http://dispatch.test"
    assert accept.pay_to == "http://dispatch.test"
    assert accept.max_timeout_seconds > 0
    purchase_url = response.get_json()["offer"]["purchase_url"]
    assert accept.extra == {"purchase_url": purchase_url}

    # Exactly the fields the contract lists, in x402's camelCase.
    raw = json.loads(base64.b64decode(header))
    assert set(raw) == {"x402Version", "resource", "accepts"}
    assert set(raw["resource"]) == {"url", "description", "mimeType"}
    assert set(raw["accepts"][0]) == {
        "scheme",
        "network",
        "amount",
        "asset",
        "payTo",
        "maxTimeoutSeconds",
        "extra",
    }
    assert "full text" not in base64.b64decode(header).decode()
    # The public cache serves the next anonymous 402 with the same header.
    again = client.get(f"/api/v1/articles/{article.slug}")
    assert again.headers.get("X-Dispatch-Cache") == "hit"
    assert again.headers["PAYMENT-REQUIRED"] == header


def test_public_base_url_names_the_network_and_the_urls(client: FlaskClient) -> None:
    article = make_article(price=49)
    app = client.application
    app.config["PUBLIC_BASE_URL"] = "https://dispatch.example"
    try:
        response = client.get(
            f"/api/v1/articles/{article.slug}",
            headers={"Host": "evil.example", "X-Forwarded-Host": "evil.example"},
        )
    finally:
        app.config["PUBLIC_BASE_URL"] = None
    decoded = decode_payment_required_header(response.headers["PAYMENT-REQUIRED"])
    [accept] = decoded.accepts
    assert accept.network == "https://dispatch.example"
    assert accept.extra["purchase_url"].startswith("https://dispatch.example/api/v1/")
    assert "evil" not in base64.b64decode(response.headers["PAYMENT-REQUIRED"]).decode()


def test_purchase_refusals_carry_the_offer_too(client: FlaskClient) -> None:
    reader = make_user()  # an empty wallet
    article = make_article(price=39)
    response = client.post(
        f"/api/v1/articles/{article.slug}/purchase", headers=bearer(make_token(reader))
    )
    assert response.status_code == 402
    decoded = decode_payment_required_header(response.headers["PAYMENT-REQUIRED"])
    assert decoded.accepts[0].amount == "39"


def test_markdown_for_the_entitled_and_the_same_402_for_everyone_else(
    client: FlaskClient,
) -> None:
    body = "# Heading\n\nThe *whole* story, for buyers: 42 ships.\n"
    article = make_article(price=39, body=body, title='A "quoted": title')
    reader = make_user()
    fund(reader, 100)
    agent = bearer(make_agent_token(reader))
    markdown = {"Accept": "text/markdown"}
    url = f"/api/v1/articles/{article.slug}"

    anonymous = client.get(url, headers=markdown)
    assert anonymous.status_code == 402
    assert "42 ships" not in anonymous.get_data(as_text=True)
    assert "PAYMENT-REQUIRED" in anonymous.headers
    # The same 402 whatever the client accepts (so the public cache may keep it).
    assert anonymous.get_data() == client.get(url).get_data()
    assert client.get(url, headers={**markdown, **agent}).status_code == 402

    assert client.post(f"{url}/purchase", headers=agent).status_code == 201
    owned = client.get(url, headers={**markdown, **agent})
    assert owned.status_code == 200
    assert owned.mimetype == "text/markdown"
    text = owned.get_data(as_text=True)
    front, rest = text.split("\n---\n\n", 1)
    assert rest == body  # the exact Markdown the manifest's text_sha256 covers
    assert 'title: "A \\"quoted\\": title"' in front
    assert "verification: " in front
    assert "Accept" in owned.headers["Vary"]
    assert "no-store" in owned.headers["Cache-Control"]
    assert "public" not in owned.headers["Cache-Control"]
    # JSON stays the default, and browsers asking for anything still get JSON.
    assert client.get(url, headers=agent).mimetype == "application/json"
    assert client.get(url, headers={**agent, "Accept": "*/*"}).mimetype == "application/json"
