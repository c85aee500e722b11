"""A live site for browser and concurrency tests: a database of its own, localstripe and
the app under gunicorn as processes, and a headless chromium driven by Playwright.

These tests cannot use the rolled-back per-test transaction (the app runs in another
process and commits for real), so each live site gets a database that nobody else
uses: a fresh PostgreSQL schema when TEST_DATABASE_URL is set (dropped afterwards),
else a SQLite file in a temporary directory.

A test module uses the fixtures by naming them as its own attributes:
`live_site = live_support.live_site` (pytest collects fixtures from module attributes).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import scoped_session, sessionmaker

from models import db
from models.base import build_engine
from tests.support.servers import ROOT, AppServer, LocalStripe
from tests.support.stripe_helpers import WEBHOOK_SECRET

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
# Give a browser test a skip marker only where chromium is missing; never download one.
needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium")

# Where browser tests leave screenshots for people to look at.
SCREENSHOTS = Path(tempfile.gettempdir())

LIVE_SECRET_KEY = "sk_test_dispatch_live"
LIVE_PUBLISHABLE_KEY = "pk_test_dispatch_live"


def with_search_path(url: str, schema: str) -> str:
    """The PostgreSQL URL whose connections use `schema` (libpq `options`)."""
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query)
    query.append(("options", f"-csearch_path={schema}"))
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


@contextmanager
def private_database(tmp_dir: Path) -> Iterator[str]:
    """The URL of an empty database used by nobody else; gone afterwards."""
    base_url = os.environ.get("TEST_DATABASE_URL")
    if not base_url:
        yield f"sqlite:///{tmp_dir / 'live.sqlite'}"
        return
    schema = f"live_{secrets.token_hex(6)}"
    admin = build_engine(base_url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield with_search_path(base_url, schema)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@contextmanager
def committing_sessions(url: str, pool_size: int = 32) -> Iterator[Engine]:
    """Point the app's `db` at a database for real: one session (and connection) per
    thread, each committing, as under gunicorn. Restores the previous binding after."""
    engine = build_engine(url, pool_size=pool_size, max_overflow=0)
    previous_engine, previous_session = db.engine, db.session
    db.engine = engine
    db.session = scoped_session(sessionmaker(bind=engine, expire_on_commit=False))
    try:
        yield engine
    finally:
        db.session.remove()
        engine.dispose()
        db.engine, db.session = previous_engine, previous_session


def flask_command(database_url: str, *args: str, **env: str) -> str:
    """Run `flask --app app ...` against a database, as an operator would; its stdout."""
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", *args],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"flask {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


@dataclass
class LiveSite:
    """The app under gunicorn with Stripe keys, talking to its own localstripe."""

    app: AppServer
    stripe: LocalStripe
    database_url: str
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return self.app.base

    def url(self, path: str) -> str:
        return self.app.base + path

    def engine(self) -> Engine:
        """An engine on the site's database, for checks behind the app's back."""
        return build_engine(self.database_url)

    def flask(self, *args: str) -> str:
        return flask_command(self.database_url, *args, **self.app_env())

    def app_env(self) -> dict[str, str]:
        return {**live_app_env(self.database_url, self.stripe.base), **self.extra_env}


def live_app_env(database_url: str, stripe_base: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "SECRET_KEY": "live-test-secret-key-not-for-production",
        "STRIPE_SECRET_KEY": LIVE_SECRET_KEY,
        "STRIPE_PUBLISHABLE_KEY": LIVE_PUBLISHABLE_KEY,
        "STRIPE_API_BASE": stripe_base,
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        # Every browser test signs up and tops up from 127.0.0.1 within a minute or two,
        # which the per-address limits (5 sign-ups a minute) would refuse. The limits
        # themselves are proven by tests/unit/security/test_rate_limits.py on servers of its own.
        "RATELIMIT_ENABLED": "0",
    }


@contextmanager
def running_site(
    log_dir: Path, *, workers: int = 2, seed: bool = True, env: dict[str, str] | None = None
) -> Iterator[LiveSite]:
    """Database, localstripe, migrations, demo data, gunicorn, webhook registered.

    `env` adds to (or overrides) the app's environment, e.g. TRUSTED_PROXIES."""
    with private_database(log_dir) as url:
        stripe = LocalStripe(log_dir)
        stripe.start()
        try:
            app_env = {**live_app_env(url, stripe.base), **(env or {})}
            flask_command(url, "db", "upgrade", **app_env)
            if seed:
                flask_command(url, "seed-demo", **app_env)
            app = AppServer(log_dir, app_env, workers=workers, name="live-app")
            app.start()
            try:
                stripe.register_webhook(f"{app.base}/webhooks/stripe", WEBHOOK_SECRET)
                yield LiveSite(app=app, stripe=stripe, database_url=url, extra_env=env or {})
            finally:
                app.stop()
        finally:
            stripe.stop()


@pytest.fixture(scope="module")
def live_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveSite]:
    with running_site(tmp_path_factory.mktemp("live")) as site:
        yield site


def launch_chromium(playwright: Any) -> Any:
    """Debian's chromium, headless, with the one set of arguments every browser test uses."""
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Debian chromium (Playwright's sync API)."""
    if not CHROMIUM.exists():
        pytest.skip("no /usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = launch_chromium(playwright)
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture()
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context (no cookies) and page; console errors fail the test."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    context.set_default_timeout(20_000)
    new_page = context.new_page()
    errors: list[str] = []
    new_page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield new_page
    finally:
        context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def fill_card(
    page: Any, number: str, expiry: tuple[str, str] = ("12", "34"), mount: str = "#card-element"
) -> None:
    """Type a card into the Stripe.js card element the way a person does.

    localstripe's stand-in Stripe.js renders plain text inputs (placeholders number,
    exp_month, exp_year (two digits), cvc, postal_code) inside the mount point rather
    than Stripe's iframe; typing fires the `input` events its element listens to.
    """
    card = page.locator(mount)
    card.get_by_placeholder("number").press_sequentially(number.replace(" ", ""))
    card.get_by_placeholder("exp_month").press_sequentially(expiry[0])
    card.get_by_placeholder("exp_year").press_sequentially(expiry[1])
    card.get_by_placeholder("cvc").press_sequentially("123")
    card.get_by_placeholder("postal_code").press_sequentially("10001")


def sign_up(page: Any, site: LiveSite, next_path: str = "/") -> str:
    """Create a new reader through /signup; their email."""
    email = f"reader-{secrets.token_hex(4)}@example.org"
    page.goto(site.url(f"/signup?next={urllib.parse.quote(next_path)}"))
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill("a-long-reader-password")
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url(lambda u: "/signup" not in u)
    return email
