"""GET /api/v1/wallet/topups/<id> while a top-up is pending (issue 11, items 7 and 8).

Pages poll it while 3-D Secure finishes. However often it is polled, the app asks Stripe
about one top-up at most once every few seconds; a reader who polls without end is
limited (429); and a poll never waits on Stripe longer than STRIPE_TIMEOUT_SECONDS.
Stripe's requests are counted in localstripe's own access log.
"""

from __future__ import annotations

import itertools
import re
import time

from flask import Flask

from tests.support.factories import bearer, make_token, reader_with_own_id
from tests.support.faults import (
    CUT,
    FORWARD,
    FREEZE,
    STRIPE_TIMEOUT,
    FaultyStripe,
    fault_app,
    faulty_stripe,
)
from tests.support.servers import LocalStripe, wait_until
from tests.support.stripe_helpers import pending_top_up

__all__ = ["fault_app", "faulty_stripe"]  # fixtures: pytest finds them as attributes here

TOPUPS = "/api/v1/wallet/topups"
_reader_ids = itertools.count(11_700_000)


def new_token() -> str:
    user = reader_with_own_id(_reader_ids)
    return make_token(user)


def stripe_reads_of(server: LocalStripe, pi_id: str) -> int:
    """How many times Stripe was asked for this PaymentIntent (localstripe's access log)."""
    pattern = re.compile(rf'"GET /v1/payment_intents/{re.escape(pi_id)}[?" ]')
    return sum(1 for line in server.log_path.read_text().splitlines() if pattern.search(line))


def test_thirty_polls_ask_stripe_about_the_top_up_at_most_twice(
    fault_app: Flask, faulty_stripe: FaultyStripe
) -> None:
    client = fault_app.test_client()
    token = new_token()
    pi_id = pending_top_up(client, faulty_stripe.server.base, token)
    before = stripe_reads_of(faulty_stripe.server, pi_id)

    for _ in range(30):
        response = client.get(f"{TOPUPS}/{pi_id}", headers=bearer(token))
        assert response.status_code == 200, response.json
        assert response.json["topup"]["status"] == "requires_action"

    # A second read only if the 30 polls spanned the throttle's window on a slow machine.
    wait_until(lambda: stripe_reads_of(faulty_stripe.server, pi_id) > before, timeout=2)
    assert stripe_reads_of(faulty_stripe.server, pi_id) - before <= 2


def test_a_reader_who_polls_without_end_is_limited(
    fault_app: Flask, faulty_stripe: FaultyStripe
) -> None:
    client = fault_app.test_client()
    token = new_token()
    pi_id = pending_top_up(client, faulty_stripe.server.base, token)
    statuses = [
        client.get(f"{TOPUPS}/{pi_id}", headers=bearer(token)).status_code for _ in range(150)
    ]
    assert 429 in statuses
    assert statuses[0] == 200
    limited = client.get(f"{TOPUPS}/{pi_id}", headers=bearer(token))
    assert limited.json["error"]["code"] == "too_many_requests"
    # Another reader is not limited by it.
    other = new_token()
    other_pi = pending_top_up(client, faulty_stripe.server.base, other)
    assert client.get(f"{TOPUPS}/{other_pi}", headers=bearer(other)).status_code == 200


def test_a_poll_while_stripe_hangs_answers_within_the_timeout_with_what_is_known(
    fault_app: Flask, faulty_stripe: FaultyStripe
) -> None:
    client = fault_app.test_client()
    token = new_token()
    pi_id = pending_top_up(client, faulty_stripe.server.base, token)
    time.sleep(3.5)  # past the throttle window of the top-up's creation, if it counts
    faulty_stripe.proxy.set_mode(FREEZE)
    try:
        started = time.monotonic()
        response = client.get(f"{TOPUPS}/{pi_id}", headers=bearer(token))
        elapsed = time.monotonic() - started
    finally:
        faulty_stripe.proxy.set_mode(CUT)
        faulty_stripe.proxy.set_mode(FORWARD)
    assert response.status_code == 200, response.json
    assert response.json["topup"]["status"] == "requires_action"
    assert elapsed < STRIPE_TIMEOUT + 1.0
