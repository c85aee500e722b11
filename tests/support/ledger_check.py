"""The final test: after the whole suite, add up every ledger the suite wrote to.

Each test runs in a transaction rolled back at its end, but end-to-end and fault tests
run gunicorn, which commits for real, and the schema of each backend outlives its tests.
Every database the suite used is registered here; `final_audit` (called from
`pytest_sessionfinish` in conftest.py) runs `audit()` on each and fails the run with
the report when anything is out of place.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.orm import scoped_session, sessionmaker

from dispatch_pay.wallet.audit import audit
from models import db
from models.base import build_engine

_databases: list[str] = []


def register(url: str) -> None:
    """Audit this database at the end of the run."""
    if url not in _databases:
        _databases.append(url)


def registered() -> list[str]:
    return list(_databases)


def start_run() -> None:
    """Forget the databases of an earlier run in this process (mutmut runs pytest many
    times in one process; their temporary databases are gone by then)."""
    _databases.clear()


def audit_database(url: str) -> list[str]:
    """The audit's report for one database (a line if it cannot be read at all)."""
    engine = build_engine(url)
    previous = db.session
    db.session = scoped_session(sessionmaker(bind=engine))
    try:
        return audit()
    except Exception as exc:  # a database we cannot audit is a failure, not a pass
        return [f"could not audit: {type(exc).__name__}: {exc}"]
    finally:
        db.session.remove()
        db.session = previous
        engine.dispose()


def audit_databases(urls: list[str]) -> dict[str, list[str]]:
    """Problems per database, only for databases that have any."""
    found = {}
    for url in urls:
        problems = audit_database(url)
        if problems:
            found[url] = problems
    return found


def final_audit(session: pytest.Session, urls: list[str] | None = None) -> dict[str, list[str]]:
    """Audit every registered database; on any problem, print it and fail the run."""
    checked = registered() if urls is None else urls
    found = audit_databases(checked)
    lines = [f"final ledger audit: {len(checked)} database(s) checked"]
    for url, problems in found.items():
        lines.append(f"  {_safe(url)}:")
        lines.extend(f"    {problem}" for problem in problems)
    if found:
        lines.append("final ledger audit FAILED: the books do not balance")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    else:
        lines.append("final ledger audit: every ledger invariant holds")
    _write(session, lines)
    return found


def _safe(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _write(session: Any, lines: list[str]) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line("")
        for line in lines:
            reporter.write_line(line)
    else:
        print("\n".join(lines))  # no terminal reporter (e.g. -p no:terminal)
