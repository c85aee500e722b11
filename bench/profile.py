"""Where a per-reader request spends its CPU: cProfile in-process on a bench database.

    python -m bench.profile --database-url postgresql+psycopg://root@127.0.0.1:5432/bench_1k \
        --articles 1000 page api purchase webhook

Uses a database `bench.run` seeded at that scale. Each scenario runs its request through
the Flask test client (no network, no gunicorn): a warm-up, then CPU per request
(`time.process_time`, the median of five loops, hello-world measured the same way
beside it), then a profile timed by CPU with the top lines by cumulative time.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import hmac
import io
import json
import logging
import os
import pstats
import random
import sys
import time
from collections.abc import Callable
from typing import Any

from bench.run import CSRF_META, SECRET_KEY, WEBHOOK_SECRET, pending_topups
from bench.seed import (
    BENCH_READER_EMAIL,
    BENCH_READER_ID,
    PASSWORD,
    POOL_START,
    Scale,
    article_slug,
    full_article,
    pool_token,
)


def scenarios(args: argparse.Namespace, scale: Scale) -> dict[str, Callable[[int], Any]]:
    os.environ.update(
        {
            "DATABASE_URL": args.database_url,
            "SECRET_KEY": SECRET_KEY,
            "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        }
    )
    from bench.hello import app as hello
    from dispatch_pay import create_app

    app = create_app()
    logging.getLogger("dispatch_pay").setLevel(logging.WARNING)
    hello_client, browser, api = hello.test_client(), app.test_client(), app.test_client()
    page = browser.get("/login").get_data(as_text=True)
    match = CSRF_META.search(page)
    assert match is not None
    form = {"email": BENCH_READER_EMAIL, "password": PASSWORD, "csrf_token": match.group(1)}
    browser.post("/login", data=form)
    slug = article_slug(full_article(scale))
    bearer = {"Authorization": f"Bearer {pool_token(BENCH_READER_ID)}"}
    start = random.randint(10**6, 10**7) * scale.pool  # pairs no earlier run bought
    run, unique = int(time.time()), time.time_ns()

    def purchase(i: int) -> None:
        n = start + i
        reader, k = n % scale.pool, n // scale.pool
        target = article_slug((k + reader * 17) % scale.articles + 1)
        headers = {"Authorization": f"Bearer {pool_token(POOL_START + reader)}"}
        response = api.post(f"/api/v1/articles/{target}/purchase", headers=headers, json={})
        # 200: a pair bought before (the pairs are random; rare on a large database)
        assert response.status_code in (200, 201), response.data

    references: dict[int, str] = {}

    def prepare_topups(indexes: list[int]) -> None:
        """Pending top-ups the events will credit, made before anything is timed."""
        rows = []
        for i in indexes:
            references[i] = f"prof{unique % 10**12}x{i}"
            rows.append((POOL_START + i % scale.pool, references[i]))
        pending_topups(args.database_url, rows)

    def webhook(i: int) -> None:
        reader = POOL_START + i % scale.pool
        intent = {
            "id": f"pi_prof_{unique}_{i}",
            "object": "payment_intent",
            "status": "succeeded",
            "amount": 500,
            "currency": "usd",
            "latest_charge": f"ch_prof_{unique}_{i}",
            "metadata": {
                "dispatch_reader": str(reader),
                "dispatch_purpose": "wallet_topup",
                "dispatch_ref": references[i],
            },
        }
        event = {
            "id": f"evt_prof_{unique}_{i}",
            "object": "event",
            "type": "payment_intent.succeeded",
            "created": run,
            "livemode": False,
            "data": {"object": intent},
        }
        body = json.dumps(event, separators=(",", ":"))
        digest = hmac.new(WEBHOOK_SECRET.encode(), f"{run}.{body}".encode(), hashlib.sha256)
        headers = {"Stripe-Signature": f"t={run},v1={digest.hexdigest()}"}
        response = api.post(
            "/webhooks/stripe", data=body, headers=headers, content_type="application/json"
        )
        assert response.json is not None and response.json["outcome"] == "credited"

    return {
        "hello": lambda _i: hello_client.get("/"),
        "page": lambda _i: browser.get(f"/articles/{slug}"),
        "api": lambda _i: api.get(f"/api/v1/articles/{slug}", headers=bearer),
        "purchase": purchase,
        "webhook": webhook,
        "prepare": prepare_topups,  # type: ignore[dict-item]
    }


def cpu_ms(one: Callable[[int], Any], offset: int, n: int) -> float:
    loops = []
    for r in range(5):
        started = time.process_time()
        for i in range(n):
            one(offset + r * n + i)
        loops.append((time.process_time() - started) * 1000 / n)
    return sorted(loops)[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--articles", type=int, default=1000)
    parser.add_argument("--entitlements", type=int, default=None)
    parser.add_argument("--pool", type=int, default=64)
    parser.add_argument("--requests", type=int, default=40, help="per CPU loop and profile")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("which", nargs="*", default=["page", "api", "purchase", "webhook"])
    args = parser.parse_args(argv)
    entitlements = args.entitlements or 10 * args.articles
    scale = Scale(args.articles, max(entitlements // 10, 1000), entitlements, args.pool)
    found = scenarios(args, scale)
    load = " ".join(open("/proc/loadavg").read().split()[:3])  # noqa: SIM115
    print(f"load average: {load}")
    n = args.requests
    for name in args.which:
        one = found[name]
        if name == "webhook":
            indexes = [10**6 + i for i in range(5)]
            indexes += [2 * 10**6 + i for i in range(5 * n)]
            indexes += [3 * 10**6 + i for i in range(n)]
            found["prepare"](indexes)  # type: ignore[arg-type]
        for i in range(5):
            one(10**6 + i)  # warm-up: first renders, prepared statements, caches
        hello = cpu_ms(found["hello"], 0, n)
        own = cpu_ms(one, 2 * 10**6, n)
        print(f"\n== {name}: {own:.2f} ms CPU per request (hello-world {hello:.2f})")
        profile = cProfile.Profile(time.process_time)
        profile.enable()
        for i in range(n):
            one(3 * 10**6 + i)
        profile.disable()
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(
            r"dispatch_pay|sqlalchemy/orm/session|jinja2/environment|flask_login",
            args.top,
        )
        print(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
