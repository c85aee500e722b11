"""Scale out: two app servers (separate gunicorn processes) on one PostgreSQL database.

Parallel purchases by one reader, for more than the wallet covers, and duplicate webhooks,
spread over both servers: no overspending, no double credit, and the books balance.
"""

from __future__ import annotations

import itertools
import os
import signal
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import Engine

from dispatch_pay import create_app
from models.base import build_engine
from tests.conftest import TEST_DATABASE_URL
from tests.conftest import test_config as app_config
from tests.support import ledger_check
from tests.support.factories import bearer, make_article, make_token, make_user
from tests.support.faults import committing_session, own_postgres_database, scalar
from tests.support.servers import AppServer, LocalStripe, wait_until
from tests.support.stripe_helpers import (
    WEBHOOK_SECRET,
    card_payment_method,
    event,
    payment_intent_obj,
    signed,
)
from tests.support.stripe_helpers import stripe_client as stripe_api

pytestmark = [pytest.mark.postgres_only, pytest.mark.e2e]

PRICE = 100


@dataclass
class Cluster:
    url: str
    engine: Engine
    servers: list[AppServer]
    app: Flask
    stripe: LocalStripe

    def spread(self) -> Iterator[str]:
        """Server base URLs in turn, as a load balancer would hand them out."""
        return itertools.cycle([server.base for server in self.servers])


@pytest.fixture(scope="module")
def cluster(artifacts: Path) -> Iterator[Cluster]:
    if not TEST_DATABASE_URL:
        pytest.skip("needs PostgreSQL: set TEST_DATABASE_URL")
    url = own_postgres_database(TEST_DATABASE_URL, "e2e_scale")
    log_dir = artifacts / "scale"
    log_dir.mkdir(exist_ok=True)
    stripe = LocalStripe(log_dir)  # its own: the test counts every PaymentIntent in it
    env = {
        "DATABASE_URL": url,
        "SECRET_KEY": "scale-out-tests-secret-key",
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "STRIPE_SECRET_KEY": "sk_test_dispatch",
        "STRIPE_PUBLISHABLE_KEY": "pk_test_dispatch",
        "STRIPE_API_BASE": stripe.base,
        "REDIS_URL": "",
    }
    servers = [AppServer(artifacts, env, workers=2, name=f"scale-app-{n}") for n in (1, 2)]
    engine = build_engine(url)
    try:
        stripe.start()
        for server in servers:
            server.start()
        # Stripe's own events go to the second server, whoever took the payment.
        stripe.register_webhook(f"{servers[1].base}/webhooks/stripe", WEBHOOK_SECRET)
        yield Cluster(
            url, engine, servers, create_app(app_config(url), configure_database=False), stripe
        )
    finally:
        for server in servers:  # both shut down at once, then each is waited for
            if server.proc is not None and server.proc.poll() is None:
                os.killpg(server.proc.pid, signal.SIGTERM)
        for server in servers:
            server.stop()
        stripe.stop()
        engine.dispose()


@dataclass
class Reader:
    id: int
    token: str


def new_reader(cluster: Cluster) -> Reader:
    with cluster.app.app_context(), committing_session(cluster.engine):
        user = make_user()
        return Reader(user.id, make_token(user))


def new_articles(cluster: Cluster, count: int) -> list[str]:
    with cluster.app.app_context(), committing_session(cluster.engine):
        return [make_article(price=PRICE).slug for _ in range(count)]


def in_parallel(calls: list[Callable[[], requests.Response]]) -> list[requests.Response]:
    with ThreadPoolExecutor(max_workers=12) as pool:
        return list(pool.map(lambda call: call(), calls))


def webhook_call(base: str, evt: dict[str, Any]) -> Callable[[], requests.Response]:
    payload, headers = signed(evt)
    return lambda: requests.post(
        f"{base}/webhooks/stripe", data=payload, headers=headers, timeout=60
    )


def purchase_call(base: str, reader: Reader, slug: str) -> Callable[[], requests.Response]:
    url = f"{base}/api/v1/articles/{slug}/purchase"
    return lambda: requests.post(url, headers=bearer(reader.token), timeout=60)


def topup_call(
    base: str, body: dict[str, Any], headers: dict[str, str]
) -> Callable[[], requests.Response]:
    return lambda: requests.post(
        f"{base}/api/v1/wallet/topups", json=body, headers=headers, timeout=60
    )


def duplicate_webhooks(
    cluster: Cluster, reader: Reader, pi_id: str, amount: int
) -> list[Callable[[], requests.Response]]:
    """The same event delivered six times, and the same payment in four other events."""
    intent = payment_intent_obj(pi_id, amount, reader.id)
    same = event("payment_intent.succeeded", intent)
    events = [same] * 6 + [event("payment_intent.succeeded", intent) for _ in range(4)]
    bases = cluster.spread()
    return [webhook_call(next(bases), evt) for evt in events]


def credits(cluster: Cluster, pi_id: str) -> int:
    return int(
        scalar(
            cluster.engine,
            "SELECT count(*) FROM ledger_entries WHERE kind = 'topup' AND reference = :p",
            p=pi_id,
        )
    )


def balance_everywhere(cluster: Cluster, reader: Reader) -> int:
    """The balance as each server reports it; they must agree."""
    seen = {
        requests.get(f"{s.base}/api/v1/wallet", headers=bearer(reader.token), timeout=30).json()[
            "balance"
        ]["amount"]
        for s in cluster.servers
    }
    assert len(seen) == 1, seen
    return int(seen.pop())


def outcomes(responses: list[requests.Response]) -> Counter[str]:
    return Counter(str(r.json().get("outcome")) for r in responses)


def test_duplicate_webhooks_over_two_servers_credit_once(cluster: Cluster) -> None:
    reader = new_reader(cluster)
    pi_id = f"pi_scale_dupes_{reader.id}"

    responses = in_parallel(duplicate_webhooks(cluster, reader, pi_id, 1000))

    assert [r.status_code for r in responses] == [200] * 10, [r.text for r in responses]
    counts = outcomes(responses)
    assert counts["credited"] == 1, counts
    assert counts["duplicate"] == 5, counts
    assert counts["already_credited"] == 4, counts
    assert credits(cluster, pi_id) == 1
    assert balance_everywhere(cluster, reader) == 1000
    assert ledger_check.audit_database(cluster.url) == []


def test_parallel_purchases_over_two_servers_never_overspend(cluster: Cluster) -> None:
    reader = new_reader(cluster)
    in_parallel(duplicate_webhooks(cluster, reader, f"pi_scale_buy_{reader.id}", 1000))
    slugs = new_articles(cluster, 14)  # 1,400 of articles for a wallet of 1,000
    bases = cluster.spread()
    # Every article asked for twice, once on each server, all at once.
    calls = [purchase_call(next(bases), reader, slug) for slug in slugs for _ in (1, 2)]

    responses = in_parallel(calls)

    by_article: dict[str, list[int]] = defaultdict(list)
    ids: dict[str, set[int]] = defaultdict(set)
    for slug, response in zip([s for s in slugs for _ in (1, 2)], responses, strict=True):
        by_article[slug].append(response.status_code)
        if response.status_code in (200, 201):
            ids[slug].add(response.json()["purchase"]["id"])
    bought = [slug for slug, codes in by_article.items() if 201 in codes]
    assert len(bought) == 10, dict(by_article)
    for slug, codes in by_article.items():
        # Bought once (the second request sees the purchase) or refused twice.
        assert sorted(codes) in ([200, 201], [402, 402]), (slug, codes)
        assert len(ids[slug]) == (1 if slug in bought else 0)
    assert balance_everywhere(cluster, reader) == 0
    assert (
        scalar(
            cluster.engine,
            "SELECT count(*) FROM purchases WHERE user_id = :u AND status = 'active'",
            u=reader.id,
        )
        == 10
    )
    assert ledger_check.audit_database(cluster.url) == []


def test_purchases_racing_a_duplicated_top_up_spend_only_what_arrived(cluster: Cluster) -> None:
    reader = new_reader(cluster)
    pi_id = f"pi_scale_race_{reader.id}"
    slugs = new_articles(cluster, 8)
    bases = cluster.spread()
    buys = [purchase_call(next(bases), reader, slug) for slug in slugs]
    webhooks = duplicate_webhooks(cluster, reader, pi_id, 500)
    mixed = [call for pair in itertools.zip_longest(webhooks, buys) for call in pair if call]

    responses = in_parallel(mixed)

    assert all(r.status_code in (200, 201, 402) for r in responses), [r.text for r in responses]
    bought = sum(1 for r in responses if r.status_code == 201)
    assert credits(cluster, pi_id) == 1
    assert bought <= 5
    assert balance_everywhere(cluster, reader) == 500 - bought * PRICE >= 0
    assert scalar(cluster.engine, "SELECT count(*) FROM wallets WHERE balance < 0") == 0
    assert ledger_check.audit_database(cluster.url) == []


def test_one_top_up_sent_to_both_servers_at_once_charges_once(cluster: Cluster) -> None:
    """A double click (or a retrying client) reaches both servers with the same key."""
    reader = new_reader(cluster)
    body = {
        "amount": 700,
        "currency": "usd",
        "payment_method": card_payment_method(cluster.stripe.base),
    }
    headers = {**bearer(reader.token), "Idempotency-Key": f"double-click-{reader.id}"}
    bases = cluster.spread()
    calls = [topup_call(next(bases), body, headers) for _ in range(6)]

    responses = in_parallel(calls)

    codes = Counter(r.status_code for r in responses)
    assert set(codes) <= {201, 409} and codes[201] >= 1, [r.text for r in responses]
    assert {r.json()["error"]["code"] for r in responses if r.status_code == 409} <= {
        "idempotency_key_in_use"
    }
    (pi_id,) = {r.json()["topup"]["id"] for r in responses if r.status_code == 201}
    charged = [
        pi.id
        for pi in stripe_api(cluster.stripe.base)
        .v1.payment_intents.list(params={"limit": 100})
        .data
        if pi.to_dict().get("metadata", {}).get("dispatch_reader") == str(reader.id)
    ]
    assert charged == [pi_id]
    # localstripe's own payment_intent.succeeded reaches the other server: still one credit.
    assert wait_until(
        lambda: (
            scalar(
                cluster.engine,
                "SELECT count(*) FROM webhook_events WHERE payload->'data'->'object'->>'id' = :p",
                p=pi_id,
            )
            > 0
        )
    )
    assert credits(cluster, pi_id) == 1
    assert balance_everywhere(cluster, reader) == 700
    assert ledger_check.audit_database(cluster.url) == []
