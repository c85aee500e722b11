"""The wallet page: the reader's agents, their limits, what they spent and bought."""

from __future__ import annotations

import json
import re

from flask.testing import FlaskClient
from sqlalchemy import select

from models import ApiToken, TokenKind, db
from tests.support.factories import bearer, make_article, make_user
from tests.support.wallet import fund
from tests.support.web import csrf_token_from, log_in


def test_a_reader_creates_an_agent_on_the_wallet_page_and_sees_what_it_bought(
    client: FlaskClient,
) -> None:
    reader = make_user()
    fund(reader, 500)
    csrf = log_in(client, reader)
    page = client.get("/wallet").get_data(as_text=True)
    assert 'id="agent-token-form"' in page

    created = client.post(
        "/wallet/agent-tokens",
        data={"name": "Scout", "max_price": "0.50", "daily_limit": "2.00", "csrf_token": csrf},
    )
    assert created.status_code == 201
    assert "no-store" in created.headers["Cache-Control"]
    html = created.get_data(as_text=True)
    secret = re.search(r'id="agent-token-secret" value="([^"]+)"', html)
    assert secret
    config = json.loads(
        re.search(r'<pre id="mcp-config">(.*?)</pre>', html, re.S).group(1).replace("&#34;", '"')  # type: ignore[union-attr]
    )
    server = next(iter(config["mcpServers"].values()))
    assert server["url"].endswith("/mcp")
    assert server["headers"]["Authorization"] == f"Bearer {secret.group(1)}"
    token = db.session.scalar(select(ApiToken).where(ApiToken.kind == TokenKind.AGENT))
    assert token is not None
    assert (token.max_price_amount, token.daily_limit_amount) == (50, 200)

    article = make_article(price=39, title="Lighthouse keepers")
    bought = client.post(
        f"/api/v1/articles/{article.slug}/purchase", headers=bearer(secret.group(1))
    )
    assert bought.status_code == 201
    page = client.get("/wallet").get_data(as_text=True)
    agents = page[page.index('id="agent-purchases"') :]
    assert "Scout" in agents and "Lighthouse keepers" in agents
    assert "$0.39" in page[page.index('id="agent-tokens"') :]  # spent today

    revoked = client.post(f"/wallet/agent-tokens/{token.id}/revoke", data={"csrf_token": csrf})
    assert revoked.status_code == 302
    assert client.get("/api/v1/articles", headers=bearer(secret.group(1))).status_code == 401


def test_a_bad_limit_is_422_and_creates_nothing(client: FlaskClient) -> None:
    reader = make_user()
    csrf = log_in(client, reader)
    response = client.post(
        "/wallet/agent-tokens",
        data={"name": "Scout", "max_price": "-1", "daily_limit": "2.00", "csrf_token": csrf},
    )
    assert response.status_code == 422
    assert "max price" in response.get_data(as_text=True)
    assert db.session.scalar(select(ApiToken).where(ApiToken.kind == TokenKind.AGENT)) is None
    assert csrf_token_from(client, "/wallet")
