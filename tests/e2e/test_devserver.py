"""The README's run command (`make run` runs `python -m dispatch_pay.devserver`) end to end.

It must migrate, seed the demo, start localstripe on loopback, register the webhook,
print the URL, the demo logins and the test card, take a card top-up, and stop
everything it started on SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from models.base import build_engine
from tests.support.live import private_database
from tests.support.servers import ROOT, free_port, wait_until
from tests.support.stripe_helpers import CARD_OK, card_payment_method

pytestmark = [pytest.mark.e2e]


def call(url: str, body: dict[str, Any], token: str | None = None) -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def webhook_outcomes(url: str) -> list[str]:
    engine = build_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.scalars(text("SELECT outcome FROM webhook_events")))
    finally:
        engine.dispose()


def listening(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def test_the_run_command_serves_the_demo_and_takes_a_card_top_up(tmp_path: Path) -> None:
    app_port, stripe_port = free_port(), free_port()
    with private_database(tmp_path) as url:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("STRIPE_")  # no keys: the run command starts localstripe
        }
        env.update(DATABASE_URL=url, LOCALSTRIPE_PORT=str(stripe_port), PYTHONUNBUFFERED="1")
        log = tmp_path / "devserver.log"
        with log.open("wb") as out:
            server = subprocess.Popen(
                [sys.executable, "-m", "dispatch_pay.devserver", "--port", str(app_port)],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            assert wait_until(lambda: listening(app_port), timeout=60), log.read_text()
            printed = log.read_text()
            assert f"dispatch_pay is running at http://127.0.0.1:{app_port}/" in printed
            assert "reader@dispatch.example / reader-demo-2026" in printed
            assert "4242 4242 4242 4242" in printed

            base = f"http://127.0.0.1:{app_port}"
            token = call(
                f"{base}/api/v1/tokens",
                {"email": "reader@dispatch.example", "password": "reader-demo-2026"},
            )["token"]
            method = card_payment_method(f"http://127.0.0.1:{stripe_port}", CARD_OK)
            topup = call(
                f"{base}/api/v1/wallet/topups",
                {"amount": 500, "currency": "usd", "payment_method": method},
                token,
            )["topup"]
            assert topup["status"] == "succeeded"
            wallet = urllib.request.Request(
                f"{base}/api/v1/wallet", headers={"Authorization": f"Bearer {token}"}
            )
            with urllib.request.urlopen(wallet, timeout=10) as response:
                assert json.loads(response.read())["balance"]["amount"] == 500
            # localstripe's own payment_intent.succeeded reaches the registered webhook.
            assert wait_until(lambda: webhook_outcomes(url) == ["already_credited"])
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
        assert not listening(app_port)
        assert not listening(stripe_port)
