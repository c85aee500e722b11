"""The benchmark's seeder writes what the app itself would: consistent rows, a clean ledger.

SQLite only: seeding replaces the whole schema of the database it is given, which must
never be the test database of a PostgreSQL run.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from sqlalchemy import create_engine, text

from bench.seed import BENCH_READER_ID, Scale, full_article, seed
from tests.support.servers import BIN, ROOT


def test_seeded_database_is_consistent_and_passes_the_audit(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bench.sqlite'}"
    scale = Scale(articles=30, readers=50, entitlements=300, pool=4)
    seed(url, scale)
    engine = create_engine(url)
    with engine.connect() as conn:

        def one(sql: str, **params: int) -> int:
            return int(conn.execute(text(sql), params).scalar_one())

        assert one("SELECT count(*) FROM articles WHERE status = 'published'") == 30
        # Every article points at its own revision, and that revision has a report.
        assert (
            one(
                "SELECT count(*) FROM articles a JOIN article_revisions r"
                " ON r.id = a.live_revision_id AND r.article_id = a.id"
                " JOIN verification_reports v ON v.revision_id = r.id"
                " AND v.body_sha256 = r.body_sha256"
            )
            == 30
        )
        assert one("SELECT count(*) FROM entitlements") == 300
        assert (
            one(
                "SELECT count(*) FROM entitlements WHERE user_id = :u AND article_id = :a",
                u=BENCH_READER_ID,
                a=full_article(scale),
            )
            == 1
        )
        assert (
            one(
                "SELECT count(*) FROM entitlements e LEFT JOIN users u ON u.id = e.user_id"
                " WHERE u.id IS NULL"
            )
            == 0
        )
        # The bench reader's token, and a reader's and an agent's token per pool reader.
        assert one("SELECT count(*) FROM api_tokens") == 2 * scale.pool + 1
        assert one("SELECT count(*) FROM api_tokens WHERE kind = 'agent'") == scale.pool
        assert one("SELECT version FROM catalog_state") > 1
    engine.dispose()
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": "bench-seed-test"}
    result = subprocess.run(
        [str(BIN / "flask"), "--app", "app", "audit"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
