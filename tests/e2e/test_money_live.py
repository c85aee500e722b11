"""The money holes of issue 11 (items 2, 3, 5, 7 and 10), attacked from outside against
the live app: gunicorn (2 workers, 4 threads each), PostgreSQL when TEST_DATABASE_URL is
set (else SQLite), localstripe, HTTP only. The tests of this module share one site and run
in file order; the signed events of the last one are meant to make `audit` complain.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from tests.support.live import LiveSite, running_site
from tests.support.servers import ROOT, free_port
from tests.support.stripe_helpers import (
    CARD_3DS,
    card_payment_method,
    dispute_obj,
    event,
    signed,
    stripe_charge_of,
    stripe_intent_of,
)
from tests.support.stripe_helpers import stripe_client as stripe_api

STRIPE_TIMEOUT = 4.0
# Room for a loaded two-core machine on top of what is measured.
ROOM = 2.0


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveSite]:
    with running_site(
        tmp_path_factory.mktemp("money-live"),
        env={"STRIPE_TIMEOUT_SECONDS": str(STRIPE_TIMEOUT), "STRIPE_NETWORK_RETRIES": "1"},
    ) as live:
        yield live


def flask_run(site: LiveSite, *args: str) -> tuple[int, str]:
    """`flask --app app ...` against the site's database: exit status and output."""
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", *args],
        cwd=ROOT,
        env={**os.environ, **site.app_env()},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return result.returncode, result.stdout + result.stderr


def signed_up(site: LiveSite) -> tuple[int, str]:
    """A new reader through the API: id and token."""
    response = requests.post(
        site.url("/api/v1/readers"),
        json={"email": f"live-{secrets.token_hex(5)}@example.org", "password": "a-long-password"},
        timeout=20,
    )
    assert response.status_code == 201, response.text
    return int(response.json()["reader"]["id"]), str(response.json()["token"])


def new_reader(site: LiveSite) -> str:
    return signed_up(site)[1]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def publisher_token(site: LiveSite) -> str:
    return site.flask("create-publisher", f"pub-{secrets.token_hex(4)}@example.org").splitlines()[
        -1
    ]


def balance(site: LiveSite, token: str, currency: str = "usd") -> int:
    response = requests.get(
        site.url(f"/api/v1/wallet?currency={currency}"), headers=auth(token), timeout=20
    )
    return int(response.json()["balance"]["amount"])


def top_up(
    site: LiveSite, token: str, amount: int = 500, currency: str = "usd", **extra: Any
) -> Any:
    return requests.post(
        site.url("/api/v1/wallet/topups"),
        json={
            "amount": amount,
            "currency": currency,
            "payment_method": card_payment_method(
                site.stripe.base, extra.pop("card", "4242424242424242")
            ),
            **extra,
        },
        headers=auth(token),
        timeout=60,
    )


def post_event(site: LiveSite, evt: dict[str, Any], timeout: float = 60) -> requests.Response:
    payload, headers = signed(evt)
    return requests.post(
        site.url("/webhooks/stripe"), data=payload, headers=headers, timeout=timeout
    )


class WebhooksAway:
    """localstripe's webhooks go to a port nobody listens on while inside: the app hears
    of nothing Stripe does (a lost webhook)."""

    def __init__(self, site: LiveSite) -> None:
        self.site = site

    def __enter__(self) -> None:
        self.site.stripe.register_webhook(f"http://127.0.0.1:{free_port()}/nowhere", "whsec_away")

    def __exit__(self, *_exc: object) -> None:
        from tests.support.stripe_helpers import WEBHOOK_SECRET

        self.site.stripe.register_webhook(self.site.url("/webhooks/stripe"), WEBHOOK_SECRET)


def unheard_top_up(site: LiveSite, token: str, amount: int = 500) -> str:
    """A 3-D Secure top-up authenticated in Stripe; the app is not told."""
    response = top_up(site, token, amount, card=CARD_3DS)
    assert response.status_code == 201, response.text
    topup = response.json()["topup"]
    assert topup["status"] == "requires_action"
    stripe_api(site.stripe.base).raw_request(
        "post",
        f"/v1/payment_intents/{topup['id']}/_authenticate",
        client_secret=topup["client_secret"],
        success="true",
    )
    return str(topup["id"])


# --- item 2: a card refund lost for good -----------------------------------------------


def test_a_refund_while_stripe_is_frozen_is_retried_and_never_lost(site: LiveSite) -> None:
    token = new_reader(site)
    with WebhooksAway(site):
        pi_id = unheard_top_up(site, token)
        stripe_api(site.stripe.base).v1.refunds.create(params={"payment_intent": pi_id})
        refund = event("charge.refunded", stripe_charge_of(site.stripe.base, pi_id))
        pi_dispute = unheard_top_up(site, token, 700)
        charge = stripe_charge_of(site.stripe.base, pi_dispute)
        dispute = event(
            "charge.dispute.created",
            dispute_obj(f"dp_{pi_dispute}", pi_dispute, 700, "needs_response", charge["id"]),
        )

        site.stripe.pause()
        try:
            started = time.monotonic()
            refused = post_event(site, refund)
            refused_dispute = post_event(site, dispute)
            elapsed = time.monotonic() - started
        finally:
            site.stripe.resume()

    assert refused.status_code == 503, refused.text  # Stripe delivers it again
    assert refused_dispute.status_code == 503, refused_dispute.text
    assert elapsed < 2 * (STRIPE_TIMEOUT + ROOM)
    assert post_event(site, refund).status_code == 200
    assert post_event(site, dispute).status_code == 200
    code, output = flask_run(site, "reconcile")
    assert code == 0, output
    assert balance(site, token) == 700  # the refunded 500 is gone, the disputed 700 held
    wallet = requests.get(site.url("/api/v1/wallet"), headers=auth(token), timeout=20).json()
    assert wallet["status"] == "frozen"
    code, output = flask_run(site, "audit")
    assert code == 0, output


def test_reconcile_credits_nothing_the_card_got_back(site: LiveSite) -> None:
    token = new_reader(site)
    with WebhooksAway(site):
        pi_id = unheard_top_up(site, token, 800)
        stripe_api(site.stripe.base).v1.refunds.create(
            params={"payment_intent": pi_id, "amount": 300}
        )
    code, output = flask_run(site, "reconcile")
    assert code == 0, output
    assert balance(site, token) == 500
    code, output = flask_run(site, "audit")
    assert code == 0, output


# --- item 5: the price moved between sight and click ------------------------------------


def test_a_price_changed_between_sight_and_click_is_a_409(site: LiveSite) -> None:
    token = new_reader(site)
    assert top_up(site, token, 1000).status_code == 201
    slug = "library-seed-exchange"
    shown = requests.get(
        site.url(f"/api/v1/articles/{slug}"), headers=auth(token), timeout=20
    ).json()
    shown_price = shown["offer"]["price"]
    publisher = publisher_token(site)
    raised = {"amount": shown_price["amount"] + 401, "currency": shown_price["currency"]}
    response = requests.patch(
        site.url(f"/api/v1/articles/{slug}"),
        json={"price": raised},
        headers=auth(publisher),
        timeout=20,
    )
    assert response.status_code == 200, response.text

    bought = requests.post(
        site.url(f"/api/v1/articles/{slug}/purchase"),
        json={"expected_price": shown_price},
        headers=auth(token),
        timeout=20,
    )

    assert bought.status_code == 409, bought.text
    assert bought.json()["error"]["code"] == "price_changed"
    assert bought.json()["offer"]["price"] == raised
    assert balance(site, token) == 1000
    again = requests.post(
        site.url(f"/api/v1/articles/{slug}/purchase"),
        json={"expected_price": raised},
        headers=auth(token),
        timeout=20,
    )
    assert again.status_code == 201, again.text
    assert balance(site, token) == 1000 - raised["amount"]


# --- item 7: polling a pending top-up while Stripe is frozen -----------------------------


def test_polls_of_pending_top_ups_while_stripe_is_frozen_do_not_stall_the_site(
    site: LiveSite,
) -> None:
    pending = []
    for _ in range(8):
        token = new_reader(site)
        response = top_up(site, token, card=CARD_3DS)
        assert response.status_code == 201, response.text
        pending.append((token, response.json()["topup"]["id"]))
    time.sleep(3.5)  # past any throttle window that the creation itself opened
    stop = threading.Event()

    def poll(item: tuple[str, str]) -> list[float]:
        token, pi_id = item
        waits = []
        while not stop.is_set():
            started = time.monotonic()
            requests.get(
                site.url(f"/api/v1/wallet/topups/{pi_id}"), headers=auth(token), timeout=60
            )
            waits.append(time.monotonic() - started)
        return waits

    site.stripe.pause()
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            futures = [pool.submit(poll, item) for item in pending]
            time.sleep(1.0)  # every poller is in the app now
            started = time.monotonic()
            page = requests.get(site.url("/articles/harbour-cranes-go-electric"), timeout=60)
            page_wait = time.monotonic() - started
            time.sleep(STRIPE_TIMEOUT)
            stop.set()
            waits = [w for f in futures for w in f.result()]
    finally:
        site.stripe.resume()

    assert page.status_code == 200
    assert page_wait < ROOM, f"an anonymous page waited {page_wait:.1f} s behind Stripe"
    assert max(waits) < STRIPE_TIMEOUT + ROOM


# --- item 10: refunds raced across currencies --------------------------------------------


def publish_article(site: LiveSite, publisher: str, currency: str) -> str:
    slug = f"race-{currency}-{secrets.token_hex(4)}"
    created = requests.post(
        site.url("/api/v1/articles"),
        json={
            "title": f"A dispatch priced in {currency}",
            "slug": slug,
            "teaser": "A teaser anyone may read.",
            "body": "The full text, for paying readers only.",
            "price": {"amount": 100, "currency": currency},
        },
        headers=auth(publisher),
        timeout=20,
    )
    assert created.status_code == 201, created.text
    report = {
        "verifier": "live-test",
        "checked_at": "2026-11-01T00:00:00+00:00",
        "claims": [
            {
                "claim": "The text exists.",
                "verdict": "supported",
                "sources": [{"url": "https://source.example.org/1", "title": "Source"}],
                "note": "checked",
            }
        ],
    }
    put = requests.put(
        site.url(f"/api/v1/articles/{slug}/verification"),
        json=report,
        headers=auth(publisher),
        timeout=20,
    )
    assert put.status_code == 200, put.text
    published = requests.post(
        site.url(f"/api/v1/articles/{slug}/publish"), headers=auth(publisher), timeout=20
    )
    assert published.status_code == 200, published.text
    return slug


def test_nine_refunds_in_three_currencies_at_once_make_exactly_three(site: LiveSite) -> None:
    publisher = publisher_token(site)
    token = new_reader(site)
    purchase_ids = []
    for currency in ("usd", "eur", "gbp"):
        assert top_up(site, token, 1000, currency).status_code == 201
        for _ in range(3):
            slug = publish_article(site, publisher, currency)
            bought = requests.post(
                site.url(f"/api/v1/articles/{slug}/purchase"), headers=auth(token), timeout=20
            )
            assert bought.status_code == 201, bought.text
            purchase_ids.append(bought.json()["purchase"]["id"])
    start = threading.Barrier(len(purchase_ids))

    def refund(purchase_id: int) -> int:
        start.wait(timeout=30)
        return requests.post(
            site.url(f"/api/v1/purchases/{purchase_id}/refund"), headers=auth(token), timeout=60
        ).status_code

    with ThreadPoolExecutor(max_workers=len(purchase_ids)) as pool:
        statuses = list(pool.map(refund, purchase_ids))

    assert Counter(statuses) == {200: 3, 409: 6}


# --- item 3: signed events that must credit nobody (last: audit then reports them) -----


def test_misdirected_and_malformed_credits_are_acknowledged_uncredited_and_reported(
    site: LiveSite,
) -> None:
    a = new_reader(site)
    b_id, b = signed_up(site)
    response = top_up(site, a, card=CARD_3DS)
    assert response.status_code == 201, response.text
    pi_id = response.json()["topup"]["id"]
    genuine = {**stripe_intent_of(site.stripe.base, pi_id), "status": "succeeded"}
    forged = [
        {**genuine, "metadata": {**genuine["metadata"], "dispatch_reader": str(b_id)}},
        {**genuine, "amount": -500},
        {**genuine, "amount": 0},
        {**genuine, "amount": 2**31},
        {**genuine, "amount": 10**30},
    ]
    statuses = [
        post_event(site, event("payment_intent.succeeded", obj)).status_code for obj in forged
    ]
    statuses.append(
        post_event(
            site, event("payment_intent.succeeded", genuine, event_id="evt_" + "x" * 400)
        ).status_code
    )
    statuses.append(post_event(site, event("payment_intent." + "s" * 200, genuine)).status_code)

    assert statuses == [200] * len(statuses)
    assert balance(site, a) == 0
    assert balance(site, b) == 0
    code, output = flask_run(site, "audit")
    assert code == 1, output
