"""`make run`: migrate, seed the demo, start the local Stripe stand-in if needed, serve.

Run as `python -m dispatch_pay.devserver`. For development only; production runs
`gunicorn app:app` behind a proxy.

With no STRIPE_SECRET_KEY in the environment, localstripe (Stripe's stand-in from
PyPI) is started on 127.0.0.1:8420, the app is pointed at it with test keys, and
the app's webhook endpoint is registered with it, so top-ups work end to end.
"""

from __future__ import annotations

import argparse
import atexit
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# 8420 is localstripe's own default; the variable lets two checkouts (or a test) run side by side.
LOCALSTRIPE_PORT = int(os.environ.get("LOCALSTRIPE_PORT") or 8420)
TEST_CARD = "4242 4242 4242 4242"
FLASK_RUN = [sys.executable, "-m", "flask", "--app", "app", "run"]
FLASK_MAIL = [sys.executable, "-m", "flask", "--app", "app", "send-mail"]


def _flask(*args: str, env: dict[str, str]) -> None:
    subprocess.run(  # noqa: S603 - fixed command line, no user input
        [sys.executable, "-m", "flask", "--app", "app", *args], cwd=ROOT, env=env, check=True
    )


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - loopback URL we built
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def _wait_for(url: str, seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _answers(url):
            return True
        time.sleep(0.2)
    return False


# localstripe's own entry point listens on every interface and reloads the state that
# every localstripe on the machine dumps into /tmp/localstripe.pickle (test runs
# included: `reconcile` would then credit their PaymentIntents to demo readers whose
# ids merely match). So run its app ourselves: loopback only, starting empty.
LOCALSTRIPE_ON_LOOPBACK = """
import sys
from aiohttp import web
from localstripe.server import app
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""


def start_localstripe(env: dict[str, str], app_url: str) -> None:
    """Start localstripe (unless one already listens), configure keys, register the webhook."""
    base = f"http://127.0.0.1:{LOCALSTRIPE_PORT}"
    if not _answers(f"{base}/js.stripe.com/v3/"):
        log = (ROOT / "instance" / "localstripe.log").open("ab")
        proc = subprocess.Popen(  # noqa: S603 - fixed command line, no user input
            [sys.executable, "-c", LOCALSTRIPE_ON_LOOPBACK, str(LOCALSTRIPE_PORT)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        atexit.register(_stop, proc)
        if not _wait_for(f"{base}/js.stripe.com/v3/"):
            sys.exit("localstripe did not start; see instance/localstripe.log")
    webhook_secret = env.get("STRIPE_WEBHOOK_SECRET") or "whsec_" + secrets.token_hex(16)
    env.update(
        STRIPE_SECRET_KEY="sk_test_localstripe",  # noqa: S106 - localstripe accepts any key
        STRIPE_PUBLISHABLE_KEY="pk_test_localstripe",
        STRIPE_API_BASE=base,
        STRIPE_WEBHOOK_SECRET=webhook_secret,
    )
    data = urllib.parse.urlencode(
        {"url": f"{app_url}webhooks/stripe", "secret": webhook_secret}
    ).encode()
    request = urllib.request.Request(  # noqa: S310 - loopback URL we built
        f"{base}/_config/webhooks/dispatch_pay", data=data
    )
    with urllib.request.urlopen(request, timeout=5):  # noqa: S310 - loopback URL we built
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    options = parser.parse_args()
    env = dict(os.environ)
    (ROOT / "instance").mkdir(exist_ok=True)
    _flask("db", "upgrade", env=env)
    _flask("seed-demo", env=env)
    from dispatch_pay.demo import (
        PUBLISHER_EMAIL,
        PUBLISHER_PASSWORD,
        READER_EMAIL,
        READER_PASSWORD,
    )

    url = f"http://{options.host}:{options.port}/"
    local_stripe = not env.get("STRIPE_SECRET_KEY")
    if local_stripe:
        start_localstripe(env, url)
    print("\n" + "=" * 68)
    print(f"  dispatch_pay is running at {url}")
    print(f"  Reader login:    {READER_EMAIL} / {READER_PASSWORD}")
    print(f"  Publisher login: {PUBLISHER_EMAIL} / {PUBLISHER_PASSWORD}")
    if local_stripe:
        print(f"  Payments: localstripe at {env['STRIPE_API_BASE']} (no real money)")
        print(f"  Test card: {TEST_CARD}, any future expiry, any CVC and postcode")
        print("  3-D Secure test card: 4000 0025 0000 3155; declined: 4000 0000 0000 0341")
    else:
        print("  Payments: Stripe with the keys from the environment")
    if env.get("MAIL_URL"):
        print(f"  Mail: sent through {env['MAIL_URL'].rpartition('@')[2]}")
    else:
        print(f"  Mail: written as .eml files to {ROOT / 'instance' / 'outbox'}")
    print("=" * 68 + "\n", flush=True)
    # Delivers mail as it is queued (sign-in links, resets, receipts).
    mailer = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flask",
            "--app",
            "app",
            "send-mail",
            "--forever",
            "--interval",
            "1",
        ],
        cwd=ROOT,
        env=env,
    )
    atexit.register(_stop, mailer)
    server = subprocess.Popen(  # noqa: S603 - fixed command line
        [*FLASK_RUN, "--host", options.host, "--port", str(options.port)],
        cwd=ROOT,
        env=env,
    )
    # `kill` (SIGTERM) stops everything too, not only Ctrl-C: exit through the handlers.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(0))
    try:
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        _stop(server)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    main()
