"""The final ledger audit (tests/support/ledger_check.py) fails a run whose books are broken."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from alembic import command

from dispatch_pay.cli import alembic_config
from models import User, Wallet, db
from models.base import build_engine
from tests.support import ledger_check
from tests.support.faults import committing_session
from tests.support.servers import ROOT


def broken_database(path: Path) -> str:
    """A migrated SQLite database with a wallet whose balance no entry explains."""
    url = f"sqlite:///{path}"
    command.upgrade(alembic_config(url), "head")
    engine = build_engine(url)
    with committing_session(engine):
        user = User(email="broken@example.com", password_hash="x", role="reader")
        db.session.add(user)
        db.session.flush()
        db.session.add(Wallet(user_id=user.id, currency="usd", balance=100, open_disputes=0))
        db.session.commit()
    engine.dispose()
    return url


def test_the_checker_reports_a_broken_ledger_and_passes_a_sound_one(tmp_path: Path) -> None:
    broken = broken_database(tmp_path / "broken.sqlite")
    sound = f"sqlite:///{tmp_path / 'sound.sqlite'}"
    command.upgrade(alembic_config(sound), "head")

    found = ledger_check.audit_databases([broken, sound])

    assert list(found) == [broken]
    assert found[broken] == ["wallet 1: balance 100 but its entries sum to 0"]
    unreadable = ledger_check.audit_database(f"sqlite:///{tmp_path / 'missing' / 'x.sqlite'}")
    assert unreadable and unreadable[0].startswith("could not audit")


def test_the_suite_registers_its_databases_for_the_final_audit(backend_kind: str) -> None:
    urls = ledger_check.registered()
    assert any(url.startswith("sqlite") for url in urls)
    if backend_kind == "postgresql":
        assert any(url.startswith("postgresql") for url in urls)


CONFTEST = """
from tests.support import ledger_check

def pytest_sessionfinish(session):
    ledger_check.final_audit(session)
"""

TEST_FILE = """
from tests.support import ledger_check

def test_passes():
    ledger_check.register({url!r})
"""


@pytest.mark.parametrize("books", ["broken", "sound"])
def test_a_broken_ledger_fails_a_run_whose_tests_all_passed(tmp_path: Path, books: str) -> None:
    if books == "broken":
        url = broken_database(tmp_path / "ledger.sqlite")
    else:
        url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
        command.upgrade(alembic_config(url), "head")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "conftest.py").write_text(CONFTEST)
    (run_dir / "test_inner.py").write_text(textwrap.dedent(TEST_FILE.format(url=url)))
    # Only pytest itself: the installed plugins (schemathesis, hypothesis...) take seconds.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}

    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(run_dir)],
        cwd=run_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    output = result.stdout + result.stderr
    assert "1 passed" in output, output
    if books == "broken":
        assert result.returncode == 1, output
        assert "balance 100 but its entries sum to 0" in output
        assert "final ledger audit FAILED" in output
    else:
        assert result.returncode == 0, output
        assert "every ledger invariant holds" in output
