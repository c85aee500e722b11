"""Authorization matrix: every route and method of the app, for five callers.

Callers: anonymous, a reader (who owns the objects in the URLs), another reader, the
publisher, and an agent token of the reader. An agent token may only list, read and buy:
its column defaults to 403 on every API route and to the anonymous answer elsewhere (a
bearer token opens no page); a row names it (`agent=`) only where it is allowed.
API rows authenticate with bearer tokens; HTML rows log in through the login form.
Each row is one line: the route as `METHOD /path/{param}` (the same text `openapi_path`
makes of a url_map rule, so the row names the rule it covers) and what each caller
gets, in the order of ACTORS:

    Row("GET /api/v1/wallet", (401, 200, 200, 200)),

An int is the status; LOGIN is a redirect to the login page. `test_every_route_is_in_the_matrix`
fails for any rule of app.url_map without a row, so a new route must be added here.

Besides the status, every request by anonymous or the other reader must leave the
reader's wallet, ledger, purchases, top-ups, tokens and articles exactly as they were,
and no response to them may carry anything of the reader's (email, token prefix,
PaymentIntent id, the full text the reader bought).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.routing import Map, Rule
from werkzeug.test import TestResponse

from dispatch_pay.api.openapi import AUTOMATIC_METHODS, openapi_path
from dispatch_pay.catalog.gifts import create_gift, revoke_gift
from dispatch_pay.catalog.private_feed import feed_secret, new_feed_secret
from dispatch_pay.wallet.services import purchase_article
from models import (
    ApiToken,
    Article,
    Entitlement,
    GiftLink,
    LedgerEntry,
    PrivateFeed,
    Purchase,
    TopUp,
    User,
    UserSession,
    Wallet,
    WalletSettings,
    db,
)
from tests.support.factories import (
    PASSWORD,
    bearer,
    claims,
    make_agent_token,
    make_article,
    make_token,
    make_user,
)
from tests.support.wallet import credit_topup
from tests.support.web import csrf_token_from, log_in

ACTORS = ("anonymous", "reader", "other", "publisher", "agent")
LOGIN = "login"
SECRET_TEXT = "Only-the-buyer-reads-this-sentence"
_seq = itertools.count(1)

Expect = int | str
Body = Callable[[str, "World"], dict[str, Any] | None]


@dataclass(frozen=True)
class Row:
    route: str  # "METHOD /path/{param}"; {param} is filled from World.values
    expect: tuple[Expect, Expect, Expect, Expect]  # anonymous, reader, other, publisher
    json: Body | None = None  # an API body, given the actor and the world
    form: Body | None = None  # an HTML form (the CSRF token is added)
    stripe: bool = False  # needs the app configured with (local) Stripe
    values: dict[str, str] = field(default_factory=dict)  # {param} -> World.values key
    agent: Expect | None = None  # the reader's agent token; None: see expected()

    @property
    def method(self) -> str:
        return self.route.split(" ", 1)[0]

    @property
    def path(self) -> str:
        return self.route.split(" ", 1)[1]

    def expected(self, actor: str) -> Expect:
        if actor != "agent":
            return self.expect[ACTORS.index(actor)]
        if self.agent is not None:
            return self.agent
        return 403 if self.path.startswith("/api/v1/") else self.expect[0]


@dataclass
class World:
    users: dict[str, User]
    tokens: dict[str, str]
    values: dict[str, Any]


def _email() -> str:
    return f"matrix{next(_seq)}@example.com"


def new_article(_actor: str, _world: World) -> dict[str, Any]:
    return {
        "title": f"Matrix draft {next(_seq)}",
        "teaser": "Teaser.",
        "body": "Body.",
        "price": {"amount": 39, "currency": "usd"},
    }


def report(_actor: str, _world: World) -> dict[str, Any]:
    return {"verifier": "matrix", "checked_at": "2026-11-20T10:00:00Z", "claims": claims("weak")}


def credentials(actor: str, world: World) -> dict[str, Any]:
    """The actor's own login; anonymous knows the reader's email but not the password."""
    if actor in ("anonymous", "agent"):
        return {"email": world.users["reader"].email, "password": "not the password"}
    return {"email": world.users[actor].email, "password": PASSWORD}


def signup(_actor: str, _world: World) -> dict[str, Any]:
    return {"email": _email(), "password": PASSWORD}


FOR_SALE = {"slug": "for_sale"}  # an article nobody owns yet
DRAFT = {"slug": "draft"}  # a draft whose text is checked


def nothing(_actor: str, _world: World) -> dict[str, Any]:
    return {}


def topup(_actor: str, _world: World) -> dict[str, Any]:
    return {"amount": 500, "currency": "usd"}


def rename(_actor: str, _world: World) -> dict[str, Any]:
    return {"title": "Renamed"}


def article_form(_actor: str, _world: World) -> dict[str, Any]:
    return {"title": f"Dashboard draft {next(_seq)}", "teaser": "Teaser.", "body": "Body."}


def price_form(_actor: str, _world: World) -> dict[str, Any]:
    return {"price": "0.49", "currency": "usd"}


def bulk_price_form(_actor: str, world: World) -> dict[str, Any]:
    return {"price": "0.49", "currency": "usd", "articles": world.values["for_sale"]}


def report_form(actor: str, world: World) -> dict[str, Any]:
    return {"report_json": json.dumps(report(actor, world))}


def token_form(_actor: str, _world: World) -> dict[str, Any]:
    return {"name": "pipeline"}


def gift_settings(_actor: str, _world: World) -> dict[str, Any]:
    return {"gift_reads": 3}


def daily_cap(_actor: str, _world: World) -> dict[str, Any]:
    return {"daily_cap": {"amount": 500, "currency": "usd"}}


def daily_cap_form(_actor: str, _world: World) -> dict[str, Any]:
    return {"daily_cap": "5.00", "currency": "usd"}


def saved_card(_actor: str, _world: World) -> dict[str, Any]:
    return {"payment_method": "pm_card_visa"}  # a test card Stripe and localstripe know


def auto_topup(_actor: str, _world: World) -> dict[str, Any]:
    usd = {"currency": "usd"}
    return {
        "auto_topup": {
            "below": {"amount": 0, **usd},
            "amount": {"amount": 500, **usd},
            "monthly_limit": {"amount": 2000, **usd},
        }
    }


def auto_topup_form(_actor: str, _world: World) -> dict[str, Any]:
    return {"amount": "5.00", "below": "0.00", "monthly_limit": "20.00", "currency": "usd"}


def agent_budget(_actor: str, _world: World) -> dict[str, Any]:
    return {
        "name": "research agent",
        "max_price": {"amount": 100, "currency": "usd"},
        "daily_limit": {"amount": 500, "currency": "usd"},
    }


def agent_form(_actor: str, _world: World) -> dict[str, Any]:
    return {"name": "research agent", "max_price": "1.00", "daily_limit": "5.00"}


TOPUP_RESULT = {"payment_intent_id": "topup_id"}


def link_request_form(_actor: str, _world: World) -> dict[str, Any]:
    return {"email": _email()}


def password_change_form(_actor: str, _world: World) -> dict[str, Any]:
    return {"current_password": PASSWORD, "new_password": PASSWORD}


def email_change_form(_actor: str, _world: World) -> dict[str, Any]:
    return {"email": _email(), "password": PASSWORD}


BOGUS_LINK = {"token": "bogus_token"}


def account_password(_actor: str, _world: World) -> dict[str, Any]:
    return {"password": PASSWORD}


MATRIX: list[Row] = [
    # Pages anyone may see.
    Row("GET /", (200, 200, 200, 200)),
    Row("GET /articles/{slug}", (200, 200, 200, 200)),
    Row("GET /verification", (200, 200, 200, 200)),
    Row("GET /feed.xml", (200, 200, 200, 200)),
    Row("GET /sitemap.xml", (200, 200, 200, 200)),
    Row("GET /llms.txt", (200, 200, 200, 200)),
    Row("GET /robots.txt", (200, 200, 200, 200)),
    Row("GET /healthz", (200, 200, 200, 200)),
    Row("GET /static/{filename}", (200, 200, 200, 200)),
    Row("GET /favicon.ico", (200, 200, 200, 200)),
    Row("GET /api/openapi.json", (200, 200, 200, 200)),
    Row("GET /api/docs", (200, 200, 200, 200)),
    Row("GET /signup", (200, 200, 200, 200)),
    Row("POST /signup", (302, 302, 302, 302), form=signup),
    Row("GET /login", (200, 200, 200, 200)),
    Row("POST /login", (401, 302, 302, 302), form=credentials),
    Row("GET /logout", (200, 200, 200, 200)),
    Row("POST /logout", (302, 302, 302, 302), form=nothing),
    # Pages of a logged-in reader.
    Row("GET /library", (LOGIN, 200, 200, 200)),
    Row("GET /wallet", (LOGIN, 200, 200, 200)),
    # Someone else's (or an unknown) payment: the same neutral redirect to one's own wallet.
    Row("GET /wallet/topups/{payment_intent_id}/done", (LOGIN, 302, 302, 302), values=TOPUP_RESULT),
    Row("POST /articles/{slug}/buy", (LOGIN, 302, 302, 302), form=nothing, values=FOR_SALE),
    # A reader's agents, managed on the wallet page.
    Row("POST /wallet/agent-tokens", (LOGIN, 201, 201, 403), form=agent_form),
    Row(
        "POST /wallet/agent-tokens/{token_id}/revoke",
        (LOGIN, 302, 404, 404),
        form=nothing,
        values={"token_id": "agent_token_id"},
    ),
    # Stripe authenticates by signature, nobody by session or token.
    Row("POST /webhooks/stripe", (400, 400, 400, 400), json=nothing, stripe=True),
    # Accounts API.
    Row("POST /api/v1/readers", (201, 201, 201, 201), json=signup),
    Row("POST /api/v1/tokens", (401, 201, 201, 201), json=credentials),
    Row("GET /api/v1/tokens", (401, 200, 200, 200)),
    Row("DELETE /api/v1/tokens/{token_id}", (401, 200, 404, 404)),
    Row("GET /api/v1/me", (401, 200, 200, 200)),
    # Agent tokens: the reader's own business (an agent cannot give itself more budget).
    Row("POST /api/v1/agent-tokens", (401, 201, 201, 403), json=agent_budget),
    Row("GET /api/v1/agent-tokens", (401, 200, 200, 403)),
    Row(
        "DELETE /api/v1/agent-tokens/{token_id}",
        (401, 200, 404, 403),
        values={"token_id": "agent_token_id"},
    ),
    Row("GET /api/v1/me/export", (401, 200, 200, 200)),
    # The reader has a balance, which this app (no Stripe) cannot refund: 503, nothing
    # deleted. The other reader has none and is deleted; publishers are closed by operators.
    Row("DELETE /api/v1/me", (401, 503, 200, 403), json=account_password),
    Row("POST /account/delete", (LOGIN, 302, 302, 302), form=account_password),
    Row("GET /api/v1/wallet/receipts/{topup_id}", (401, 200, 404, 404)),
    Row("GET /wallet/receipts/{topup_id}", (LOGIN, 200, 404, 404)),
    # Reading.
    Row("GET /api/v1/articles", (200, 200, 200, 200), agent=200),
    Row("GET /api/v1/articles/{slug}", (402, 200, 402, 200), agent=200),
    Row("GET /api/v1/library", (401, 200, 200, 200), agent=200),
    # Verification anyone can check: hashes and counts, no part of what is sold.
    Row("GET /api/v1/articles/{slug}/manifest", (200, 200, 200, 200), agent=200),
    Row("GET /.well-known/dispatch-keys.json", (200, 200, 200, 200)),
    # Wallet and purchases.
    Row("GET /api/v1/wallet", (401, 200, 200, 200)),
    Row("POST /api/v1/articles/{slug}/purchase", (401, 201, 402, 403), values=FOR_SALE, agent=201),
    Row("GET /api/v1/purchases", (401, 200, 200, 200)),
    Row("POST /api/v1/purchases/{purchase_id}/refund", (401, 200, 404, 200)),
    Row("POST /api/v1/wallet/topups", (401, 201, 201, 201), json=topup, stripe=True),
    Row("GET /api/v1/wallet/topups/{topup_id}", (401, 200, 404, 404)),
    # Publishing.
    Row("POST /api/v1/articles", (401, 403, 403, 201), json=new_article),
    Row("PATCH /api/v1/articles/{slug}", (401, 403, 403, 200), json=rename),
    Row(
        "PUT /api/v1/articles/{slug}/verification", (401, 403, 403, 200), json=report, values=DRAFT
    ),
    Row("POST /api/v1/articles/{slug}/publish", (401, 403, 403, 200), values=DRAFT),
    Row("POST /api/v1/articles/{slug}/unpublish", (401, 403, 403, 200)),
    Row("GET /api/v1/articles/{slug}/revisions", (401, 403, 403, 200)),
    Row("GET /api/v1/publisher/articles", (401, 403, 403, 200)),
    Row("GET /api/v1/publisher/articles/{slug}", (401, 403, 403, 200)),
    Row("GET /api/v1/publisher/sales", (401, 403, 403, 200)),
    # Mailed links and the account page.
    Row("GET /login/link", (200, 200, 200, 200)),
    Row("POST /login/link", (200, 200, 200, 200), form=link_request_form),
    Row("GET /login/link/{token}", (400, 400, 400, 400), values=BOGUS_LINK),
    Row("POST /login/link/{token}", (400, 400, 400, 400), form=nothing, values=BOGUS_LINK),
    Row("GET /password/reset", (200, 200, 200, 200)),
    Row("POST /password/reset", (200, 200, 200, 200), form=link_request_form),
    Row("GET /password/reset/{token}", (400, 400, 400, 400), values=BOGUS_LINK),
    Row("POST /password/reset/{token}", (400, 400, 400, 400), form=nothing, values=BOGUS_LINK),
    Row("GET /account/email/{token}", (400, 400, 400, 400), values=BOGUS_LINK),
    Row("POST /account/email/{token}", (400, 400, 400, 400), form=nothing, values=BOGUS_LINK),
    Row("GET /account", (LOGIN, 200, 200, 200)),
    Row("POST /account/password", (LOGIN, 302, 302, 302), form=password_change_form),
    Row("POST /account/email", (LOGIN, 302, 302, 302), form=email_change_form),
    # The reader's session on another browser: only the reader may end it.
    Row("POST /account/sessions/{session_id}/end", (LOGIN, 302, 404, 404), form=nothing),
    Row("POST /account/sessions/end-all", (LOGIN, 302, 302, 302), form=nothing),
    # The publisher's dashboard.
    Row("GET /publisher", (LOGIN, 403, 403, 200)),
    Row("GET /publisher/articles/new", (LOGIN, 403, 403, 200)),
    Row("POST /publisher/articles/new", (LOGIN, 403, 403, 302), form=article_form),
    Row("GET /publisher/articles/{slug}", (LOGIN, 403, 403, 200)),
    Row("GET /publisher/articles/{slug}/edit", (LOGIN, 403, 403, 200)),
    Row("GET /publisher/articles/{slug}/manifests/{sequence}.json", (LOGIN, 403, 403, 200)),
    Row(
        "POST /publisher/articles/{slug}/edit",
        (LOGIN, 403, 403, 302),
        form=article_form,
        values=DRAFT,
    ),
    Row("POST /publisher/articles/{slug}/price", (LOGIN, 403, 403, 302), form=price_form),
    Row(
        "POST /publisher/articles/{slug}/verification",
        (LOGIN, 403, 403, 302),
        form=report_form,
        values=DRAFT,
    ),
    Row(
        "POST /publisher/articles/{slug}/publish",
        (LOGIN, 403, 403, 302),
        form=nothing,
        values=DRAFT,
    ),
    Row("POST /publisher/articles/{slug}/unpublish", (LOGIN, 403, 403, 302), form=nothing),
    Row("POST /publisher/default-price", (LOGIN, 403, 403, 302), form=price_form),
    Row("POST /publisher/prices", (LOGIN, 403, 403, 302), form=bulk_price_form),
    Row("GET /publisher/sales", (LOGIN, 403, 403, 200)),
    Row("GET /publisher/tokens", (LOGIN, 403, 403, 200)),
    Row("POST /publisher/tokens", (LOGIN, 403, 403, 201), form=token_form),
    # Another user's token (the reader's spare one) is not the publisher's to revoke.
    Row("POST /publisher/tokens/{token_id}/revoke", (LOGIN, 403, 403, 404), form=nothing),
    Row("PUT /api/v1/publisher/settings", (401, 403, 403, 200), json=gift_settings),
    # Gift links: the reader owns the article in {slug}; {token} is a revoked link of theirs
    # (a teaser page for everybody), {gift_id} a live one.
    Row("GET /gift/{token}", (200, 200, 200, 200), values={"token": "revoked_gift_token"}),
    Row(
        "POST /gift/{token}",
        (303, 303, 303, 303),
        form=nothing,
        values={"token": "revoked_gift_token"},
    ),
    Row("POST /api/v1/articles/{slug}/gifts", (401, 201, 403, 403)),
    Row("GET /api/v1/articles/{slug}/gifts", (401, 200, 200, 200)),
    Row("DELETE /api/v1/gifts/{gift_id}", (401, 200, 404, 404)),
    Row("POST /articles/{slug}/gifts", (LOGIN, 302, 403, 403), form=nothing),
    Row("POST /gifts/{gift_id}/revoke", (LOGIN, 302, 404, 404), form=nothing),
    # The private feed: {secret} is the reader's replaced secret, which opens nothing.
    Row("GET /feed/{secret}.xml", (404, 404, 404, 404)),
    Row("GET /api/v1/me/feed", (401, 200, 200, 200)),
    Row("POST /api/v1/me/feed", (401, 200, 200, 200)),
    Row("POST /library/feed", (LOGIN, 302, 302, 302), form=nothing),
    # The caller's own daily cap.
    Row("GET /api/v1/wallet/settings", (401, 200, 200, 200)),
    Row("PUT /api/v1/wallet/settings", (401, 200, 200, 200), json=daily_cap),
    Row("POST /wallet/settings", (LOGIN, 302, 302, 302), form=daily_cap_form),
    # The caller's own saved card and auto top-up.
    Row("GET /api/v1/wallet/card", (401, 200, 200, 200)),
    Row("PUT /api/v1/wallet/card", (401, 200, 200, 200), json=saved_card, stripe=True),
    Row("DELETE /api/v1/wallet/card", (401, 200, 200, 200), stripe=True),
    Row("POST /wallet/auto-topup", (LOGIN, 302, 302, 302), form=auto_topup_form),
    Row("POST /wallet/card/remove", (LOGIN, 302, 302, 302), form=nothing),
]


# -- the world the requests run against ------------------------------------------------------


def fund(user: User, amount: int) -> str:
    """Credit a succeeded top-up the way the webhook would; returns its PaymentIntent id."""
    return credit_topup(user, amount, f"pi_matrix_{user.id}_{next(_seq)}")


def build_world() -> World:
    users = {
        "reader": make_user(_email()),
        "other": make_user(_email()),
        "publisher": make_user(_email(), role="publisher"),
    }
    tokens = {actor: make_token(user) for actor, user in users.items()}
    tokens["agent"] = make_agent_token(users["reader"])
    spare_agent = make_agent_token(users["reader"])
    owned = make_article(body=f"{SECRET_TEXT} The full text.", price=39)
    for_sale = make_article(price=39)
    draft = make_article(published=False, verdicts=("supported",))
    topup_id = fund(users["reader"], 500)
    purchase = purchase_article(users["reader"], owned).purchase
    revoked_gift = create_gift(users["reader"], owned)
    revoke_gift(users["reader"], revoked_gift.gift.id)
    live_gift = create_gift(users["reader"], owned)
    old_feed_secret = feed_secret(users["reader"])
    new_feed_secret(users["reader"])
    db.session.commit()
    spare = db.session.get(ApiToken, _token_id(make_token(users["reader"])))
    assert spare is not None
    values = {
        "slug": owned.slug,
        "for_sale": for_sale.slug,
        "draft": draft.slug,
        "token_id": spare.id,
        "agent_token_id": _token_id(spare_agent),
        "token_prefix": spare.prefix,
        "purchase_id": purchase.id,
        "topup_id": topup_id,
        "filename": "style.css",
        "revoked_gift_token": revoked_gift.token,
        "gift_id": live_gift.gift.id,
        "secret": old_feed_secret,
        "sequence": 1,  # the owned article's first signed manifest
        "session_id": _session_elsewhere(users["reader"]),
        "bogus_token": "not-a-link-we-sent",
    }
    return World(users=users, tokens=tokens, values=values)


def _session_elsewhere(user: User) -> int:
    record = UserSession(user_id=user.id, token_hash=f"{user.id:064d}", user_agent="Elsewhere")
    db.session.add(record)
    db.session.commit()
    return record.id


def _token_id(secret: str) -> int:
    return next(t.id for t in db.session.scalars(select(ApiToken)) if secret.startswith(t.prefix))


def snapshot(reader: User) -> dict[str, Any]:
    """Everything of the reader's that another caller must not change."""
    db.session.expire_all()

    def rows(model: Any, *columns: str) -> list[tuple[Any, ...]]:
        found = db.session.scalars(select(model).where(model.user_id == reader.id))
        return sorted(tuple(getattr(r, c) for c in columns) for r in found)

    wallets = rows(Wallet, "id", "balance", "status")
    return {
        "wallets": wallets,
        "entries": sorted(
            (e.id, e.kind, e.amount)
            for e in db.session.scalars(
                select(LedgerEntry).where(LedgerEntry.wallet_id.in_([w[0] for w in wallets]))
            )
        ),
        "purchases": rows(Purchase, "id", "status", "amount"),
        "entitlements": rows(Entitlement, "article_id", "source"),
        "topups": rows(TopUp, "id", "status", "payment_intent_id"),
        "tokens": rows(ApiToken, "id", "revoked_at"),
        "gifts": sorted(
            (g.id, g.revoked_at)
            for g in db.session.scalars(select(GiftLink).where(GiftLink.giver_id == reader.id))
        ),
        "feeds": rows(PrivateFeed, "id", "secret_hash"),
        "settings": rows(WalletSettings, "daily_cap_amount", "daily_cap_currency"),
        "articles": sorted(
            (a.slug, a.title, a.status, a.price_amount) for a in db.session.scalars(select(Article))
        ),
    }


# -- making the request ----------------------------------------------------------------------


def url_of(row: Row, world: World) -> str:
    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        return str(world.values[row.values.get(name, name)])

    return re.sub(r"\{(\w+)\}", fill, row.path)


def call(client: FlaskClient, row: Row, actor: str, world: World) -> TestResponse:
    url = url_of(row, world)
    if row.path.startswith("/api/"):
        headers = bearer(world.tokens[actor]) if actor != "anonymous" else {}
        payload = row.json(actor, world) if row.json else None
        return client.open(url, method=row.method, json=payload, headers=headers)
    # A bearer token on a page is no login: the agent is anonymous there, with its header.
    headers = bearer(world.tokens[actor]) if actor == "agent" else {}
    if actor not in ("anonymous", "agent"):
        log_in(client, world.users[actor])
    if row.form is not None:
        form = {**(row.form(actor, world) or {}), "csrf_token": csrf_token_from(client)}
        return client.open(url, method=row.method, data=form, headers=headers)
    payload = row.json(actor, world) if row.json else None
    return client.open(url, method=row.method, json=payload, headers=headers)


def leaks(response: TestResponse, world: World, sent: str) -> list[str]:
    """The reader's things in a response, other than what the caller sent itself."""
    text = response.get_data().decode("utf-8", "replace")  # /favicon.ico is binary
    secrets = [
        world.users["reader"].email,
        str(world.values["token_prefix"]),
        str(world.values["topup_id"]),
        SECRET_TEXT,
    ]
    return [s for s in secrets if s in text and s not in sent]


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("row", MATRIX, ids=lambda row: row.route)
def test_each_caller_gets_what_the_matrix_says(
    row: Row, actor: str, request: pytest.FixtureRequest, backend_kind: str
) -> None:
    # backend_kind parametrizes over SQLite and PostgreSQL; the client is chosen per row.
    client: FlaskClient = request.getfixturevalue("stripe_client" if row.stripe else "client")
    world = build_world()
    before = snapshot(world.users["reader"])
    response = call(client, row, actor, world)
    response.get_data()
    response.close()  # static files are streamed from an open file
    expected = row.expected(actor)
    location = response.headers.get("Location", "")
    if expected == LOGIN:
        assert response.status_code == 302 and "/login" in location, (
            response.status_code,
            location,
        )
    else:
        assert response.status_code == expected, (response.status_code, response.get_data()[:300])
        assert "/login" not in location
    if actor == "agent" and response.status_code >= 300:
        assert snapshot(world.users["reader"]) == before
    if actor in ("anonymous", "other"):
        assert snapshot(world.users["reader"]) == before
        # What the caller put in the URL or the body, it knew already.
        sent = (
            url_of(row, world)
            + repr(row.json(actor, world) if row.json else None)
            + repr(row.form(actor, world) if row.form else None)
        )
        assert not leaks(response, world, sent)


def test_the_readers_objects_are_really_used(client: FlaskClient) -> None:
    """The matrix has teeth: the reader's own requests see and change those objects."""
    world = build_world()
    headers = bearer(world.tokens["reader"])
    assert world.values["topup_id"] in client.get(
        f"/api/v1/wallet/topups/{world.values['topup_id']}", headers=headers
    ).get_data(as_text=True)
    assert SECRET_TEXT in client.get(
        f"/api/v1/articles/{world.values['slug']}", headers=headers
    ).get_data(as_text=True)
    before = snapshot(world.users["reader"])
    client.post(f"/api/v1/purchases/{world.values['purchase_id']}/refund", headers=headers)
    assert snapshot(world.users["reader"]) != before


def routes_of(url_map: Map) -> set[str]:
    return {
        f"{method} {openapi_path(rule)}"
        for rule in url_map.iter_rules()
        for method in (rule.methods or set()) - AUTOMATIC_METHODS
    }


def test_every_route_is_in_the_matrix(app: Flask) -> None:
    rows = [row.route for row in MATRIX]
    assert len(rows) == len(set(rows)), "a route has two rows"
    missing = sorted(routes_of(app.url_map) - set(rows))
    assert not missing, f"routes without a row in the authorization matrix: {missing}"
    stale = sorted(set(rows) - routes_of(app.url_map))
    assert not stale, f"rows for routes that do not exist: {stale}"


def test_a_new_route_would_be_missing_from_the_matrix() -> None:
    url_map = Map([Rule("/publisher/<slug>/prices", methods=["POST"], endpoint="x")])
    assert routes_of(url_map) == {"POST /publisher/{slug}/prices"}
    assert routes_of(url_map) - {row.route for row in MATRIX}
