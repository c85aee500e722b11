"""Schemathesis against the live app, from the app's own /api/openapi.json.

The app runs under gunicorn with localstripe, on a database seeded with the demo
publication (a reader, a publisher, articles); the reader has topped up and bought an
article, so wallet, purchases and library are not empty. Every operation is called
with generated valid and invalid input, as the reader and as the publisher: no answer
may be a 5xx, and every answer must be documented (status, content type, headers, body
schema). The run is bounded and seeded, so it is the same every time.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from schemathesis.engine import Status, events
from schemathesis.engine import from_schema as engine_for
from schemathesis.hooks import GLOBAL_HOOK_DISPATCHER
from sqlalchemy import make_url, text

from dispatch_pay.cli import alembic_config
from dispatch_pay.demo import PUBLISHER_EMAIL, PUBLISHER_PASSWORD, READER_EMAIL, READER_PASSWORD
from dispatch_pay.inputs import MAX_ROW_ID
from models.base import build_engine
from tests.conftest import TEST_DATABASE_URL
from tests.support.servers import BIN, ROOT, AppServer, LocalStripe
from tests.support.stripe_helpers import WEBHOOK_SECRET, card_payment_method

pytestmark = pytest.mark.e2e

LIVE_SCHEMA = "schemathesis_live"  # PostgreSQL: a schema of its own, beside the tests' public
CONFIG: dict[str, Any] = {
    "seed": 20261124,
    # No cache in .schemathesis/: what one run learned must not change the next one.
    "cache": {"enabled": False},
    "generation": {"max-examples": 4, "deterministic": True, "database": "none"},
    "phases": {"stateful": {"enabled": False}},
    # No 5xx, every answer one the document describes (status, content type, headers,
    # body), invalid input refused, auth not ignored, deleted things gone. All of
    # schemathesis' checks but positive_data_acceptance, which wants a 2xx for every
    # schema-valid request: here a valid request may still be a 402 (not paid), or a
    # 422 from a rule the schema cannot say (the top-up minimum of each currency).
    "checks": {"enabled": True, "positive_data_acceptance": {"enabled": False}},
}


@dataclass(frozen=True)
class LiveApi:
    base: str
    tokens: dict[str, str]
    token_ids: frozenset[str]


def live_database(kind: str, tmp: Path) -> str:
    """A migrated database for the live app that the rolled-back tests never see."""
    if kind == "sqlite":
        url = f"sqlite:///{tmp / 'live.sqlite'}"
    else:
        assert TEST_DATABASE_URL
        engine = build_engine(TEST_DATABASE_URL)
        with engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {LIVE_SCHEMA} CASCADE"))
            conn.execute(text(f"CREATE SCHEMA {LIVE_SCHEMA}"))
        engine.dispose()
        url = (
            make_url(TEST_DATABASE_URL)
            .update_query_dict({"options": f"-csearch_path={LIVE_SCHEMA}"})
            .render_as_string(hide_password=False)
        )
    from alembic import command

    command.upgrade(alembic_config(url), "head")
    return url


def api(base: str, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
    request = urllib.request.Request(
        base + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"}
        | ({"Authorization": f"Bearer {token}"} if token else {}),
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def seed(base: str, env: dict[str, str], stripe_base: str) -> dict[str, dict[str, Any]]:
    subprocess.run(
        [str(BIN / "flask"), "--app", "app", "seed-demo"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    issued = {
        role: api(base, "POST", "/api/v1/tokens", {"email": email, "password": password})
        for role, email, password in (
            ("reader", READER_EMAIL, READER_PASSWORD),
            ("publisher", PUBLISHER_EMAIL, PUBLISHER_PASSWORD),
        )
    }
    tokens = {role: body["token"] for role, body in issued.items()}
    topup = {"amount": 500, "currency": "usd", "payment_method": card_payment_method(stripe_base)}
    api(base, "POST", "/api/v1/wallet/topups", topup, tokens["reader"])
    articles = api(base, "GET", "/api/v1/articles")["articles"]
    paid = next(a for a in articles if a["price"]["amount"] > 0)
    api(base, "POST", f"/api/v1/articles/{paid['slug']}/purchase", None, tokens["reader"])
    return issued


@pytest.fixture(scope="module")
def live_api(
    backend_name: str, localstripe: LocalStripe, artifacts: Path, tmp_path_factory: Any
) -> Iterator[LiveApi]:
    url = live_database(backend_name, tmp_path_factory.mktemp("live"))
    env = {
        "DATABASE_URL": url,
        "SECRET_KEY": "schemathesis-live-secret",
        "STRIPE_SECRET_KEY": "sk_test_dispatch",
        "STRIPE_PUBLISHABLE_KEY": "pk_test_dispatch",
        "STRIPE_API_BASE": localstripe.base,
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        # Rate limits would answer most sign-up, token and top-up calls with a 429 before
        # their input is even read; the fuzzing is for the input handling.
        "RATELIMIT_ENABLED": "0",
    }
    server = AppServer(artifacts, env, workers=2, name=f"schemathesis-{backend_name}")
    server.start()
    try:
        issued = seed(server.base, {**server.env, **env}, localstripe.base)
        yield LiveApi(
            server.base,
            tokens={role: body["token"] for role, body in issued.items()},
            token_ids=frozenset(str(body["token_details"]["id"]) for body in issued.values()),
        )
    finally:
        server.stop()


@pytest.fixture(scope="module", params=["sqlite"] + (["postgresql"] if TEST_DATABASE_URL else []))
def backend_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture()
def tokens_kept(live_api: LiveApi) -> Iterator[None]:
    """DELETE /tokens/{id} may not revoke the tokens the run itself authenticates with.

    Any other id (someone else's, unknown, or the just-created ones) is fair game.
    """

    protected = live_api.token_ids

    def before_call(_context: Any, case: schemathesis.Case, _kwargs: Any) -> None:
        token_id = str((case.path_parameters or {}).get("token_id"))
        if case.operation.label == "DELETE /api/v1/tokens/{token_id}" and token_id in protected:
            case.path_parameters = {"token_id": MAX_ROW_ID}

    GLOBAL_HOOK_DISPATCHER.register_hook_with_name(before_call, "before_call")
    try:
        yield
    finally:
        GLOBAL_HOOK_DISPATCHER.unregister(before_call)


def run(live: LiveApi, role: str) -> tuple[list[str], Counter[int]]:
    """Run schemathesis as the CLI would; the failures it found and the statuses it got."""
    config = schemathesis.Config.from_dict(
        {**CONFIG, "headers": {"Authorization": f"Bearer {live.tokens[role]}"}}
    )
    schema = schemathesis.openapi.from_url(f"{live.base}/api/openapi.json", config=config)
    failures: list[str] = []
    statuses: Counter[int] = Counter()
    for event in engine_for(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            statuses.update(
                i.response.status_code for i in event.recorder.interactions.values() if i.response
            )
            for checks in event.recorder.checks.values():
                failures.extend(
                    f"{event.label}: {check.name}: {check.failure_info.failure.title}\n"
                    f"{check.failure_info.failure.message}\n{check.failure_info.code_sample}"
                    for check in checks
                    if check.status == Status.FAILURE and check.failure_info is not None
                )
        elif isinstance(event, events.NonFatalError):
            failures.append(f"{event.label}: error: {event.info.format()}")
        elif isinstance(event, events.FatalError):
            raise event.exception
    return sorted(set(failures)), statuses


@pytest.mark.parametrize("role", ["reader", "publisher"])
@pytest.mark.usefixtures("tokens_kept")
def test_the_live_api_answers_as_its_document_says(live_api: LiveApi, role: str) -> None:
    failures, statuses = run(live_api, role)
    assert not failures, f"{len(failures)} failures:\n\n" + "\n\n".join(failures)
    assert statuses.total() > 300, f"schemathesis hardly called the API: {statuses}"
    # It got past authentication and validation to real answers, as this role...
    assert statuses[200] + statuses[201] > 50, statuses
    # ...and the database and localstripe were up all along: a 503 would be a bug
    # (a client's input mistaken for an unavailable dependency), documented or not.
    assert statuses[503] == 0, statuses
