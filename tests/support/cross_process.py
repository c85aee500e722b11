"""Two app processes on one database: the database they share, a publisher's token made
through the CLI as an operator would, and plain HTTP calls to the servers."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Engine, text

from dispatch_pay.cli import alembic_config
from models.base import build_engine
from tests.support.servers import BIN


def http_call(
    method: str, url: str, body: dict[str, Any] | None = None, token: str | None = None
) -> tuple[int, dict[str, str], str]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


@pytest.fixture()
def shared_database(backend: tuple[str, Engine], tmp_path: Path) -> Iterator[str]:
    """A migrated database that both servers use and that commits for real."""
    kind = backend[0]
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'shared.sqlite'}"
        command.upgrade(alembic_config(url), "head")
        yield url
        return
    from tests.conftest import TEST_DATABASE_URL  # the suite's one PostgreSQL setting

    assert TEST_DATABASE_URL
    schema = f"xproc_{uuid.uuid4().hex[:8]}"
    admin = build_engine(TEST_DATABASE_URL)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in TEST_DATABASE_URL else "?"
    url = f"{TEST_DATABASE_URL}{sep}options=-csearch_path%3D{schema}"
    try:
        command.upgrade(alembic_config(url), "head")
        yield url
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def publisher_token(url: str) -> str:
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": "cross-process-test-secret"}
    result = subprocess.run(
        [str(BIN / "flask"), "--app", "app", "create-publisher", "xproc@example.com"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    return result.stdout.strip().splitlines()[-1]
