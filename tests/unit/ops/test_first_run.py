"""First-run details (issue 17): the favicon, the front page's one verification note, the
test suite's refusal of a database not named like a test database, and the run/test split."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from tests.conftest import looks_like_test_database
from tests.support.factories import make_article

ROOT = Path(__file__).resolve().parents[3]


def test_favicon_is_served_small_and_cacheable(client: FlaskClient) -> None:
    response = client.get("/favicon.ico")
    assert response.status_code == 200
    assert response.mimetype in ("image/vnd.microsoft.icon", "image/x-icon")
    body = response.get_data()
    response.close()
    assert body[:4] == b"\x00\x00\x01\x00" and len(body) < 4096  # an ICO file, small
    assert response.cache_control.public and response.cache_control.max_age == 7 * 24 * 3600
    page = client.get("/").get_data(as_text=True)
    assert '<link rel="icon" href="/favicon.ico"' in page


def test_the_front_page_says_weak_and_unverified_claims_are_marked_once(
    client: FlaskClient,
) -> None:
    for _ in range(3):
        make_article(verdicts=("supported", "weak", "unverified"))
    page = client.get("/").get_data(as_text=True)
    assert page.count("weak and unverified claims are marked") == 1
    assert page.count('id="verification-note"') == 1


def test_an_article_page_keeps_its_own_note(client: FlaskClient) -> None:
    article = make_article(verdicts=("supported", "weak"))
    page = client.get(f"/articles/{article.slug}").get_data(as_text=True)
    assert page.count("weak and unverified claims are marked") == 1


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("postgresql+psycopg://root@127.0.0.1:5432/test", True),
        ("postgresql+psycopg://root@127.0.0.1:5432/test_ux", True),
        ("postgresql+psycopg://root@127.0.0.1:5432/dispatch_test", True),
        ("postgresql+psycopg://root@127.0.0.1:5432/dispatch_pay", False),
        ("postgresql+psycopg://root@127.0.0.1:5432/production", False),
        ("postgresql+psycopg://root@127.0.0.1:5432/contest_results", False),
    ],
)
def test_only_a_database_named_like_a_test_database_is_accepted(url: str, ok: bool) -> None:
    assert looks_like_test_database(url) is ok


def run_pytest_with(url: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "TEST_DATABASE_URL": url}
    environment.pop("ALLOW_ANY_TEST_DATABASE", None)
    environment.update(env)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "--collect-only",
            "-p",
            "no:cacheprovider",
            "tests/unit/ops/test_first_run.py",
        ],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_suite_refuses_to_empty_a_database_not_named_like_a_test_one() -> None:
    refused = run_pytest_with("postgresql+psycopg://root@127.0.0.1:5432/dispatch_pay")
    assert refused.returncode == 4  # pytest's usage error: nothing ran, nothing was dropped
    assert "DROP SCHEMA public CASCADE" in refused.stderr
    assert "ALLOW_ANY_TEST_DATABASE=1" in refused.stderr
    allowed = run_pytest_with(
        "postgresql+psycopg://root@127.0.0.1:5432/dispatch_pay", ALLOW_ANY_TEST_DATABASE="1"
    )
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr


def requirements(name: str) -> str:
    return (ROOT / name).read_text()


def test_make_run_installs_the_app_and_localstripe_but_no_dev_tools() -> None:
    run = requirements("requirements-run.txt")
    assert "-r requirements.txt" in run and "localstripe==" in run + requirements(
        "requirements.txt"
    )
    for tool in ("pytest", "mypy", "playwright", "schemathesis", "ruff", "hypothesis"):
        assert tool not in run.lower() and tool not in requirements("requirements.txt").lower()
        assert tool in requirements("requirements-dev.txt")
    makefile = requirements("Makefile")
    assert "run: install\n" in makefile and "install: $(VENV)/.installed-run" in makefile
    assert "pytest: install-test" in makefile
    assert "make bench needs wrk" in makefile
