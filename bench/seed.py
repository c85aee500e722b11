"""Seed a benchmark database at a chosen scale with bulk inserts (COPY on PostgreSQL).

The rows are what the app itself would write (published articles with a revision and
a verifier report each, readers, entitlements, funded wallets with their ledger
entries, API tokens), generated directly so that a million articles and ten million
entitlements take minutes, not hours. The ids are generated consistently, so foreign
key checks are off during the load (session_replication_role on PostgreSQL; SQLite
checks none without the app's pragma), which lets articles point at their revisions
in the same pass.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from alembic import command
from sqlalchemy import Engine, create_engine, text
from werkzeug.security import generate_password_hash

from dispatch_pay.catalog.markdown import render_markdown, text_sha256
from dispatch_pay.cli import alembic_config

BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)
PASSWORD = "bench-password"  # noqa: S105 - the bench reader's password on a throwaway database
BENCH_READER_EMAIL = "bench-reader@bench.example"
WALLET_FUNDS = 100_000_000  # minor units: enough for every purchase a run can make
PUBLISHER_ID, BENCH_READER_ID, POOL_START = 1, 2, 3


@dataclass(frozen=True)
class Scale:
    articles: int
    readers: int
    entitlements: int
    pool: int  # readers with a token and a funded wallet: purchases and webhooks

    @property
    def bulk_start(self) -> int:
        return POOL_START + self.pool

    @property
    def bulk_readers(self) -> int:
        return max(self.readers - self.pool - 1, 1)


def pool_token(user_id: int) -> str:
    return f"dp_bench_reader_{user_id}"


def agent_token(user_id: int) -> str:
    """A pool reader's agent token (buy-and-read runs through the budget checks)."""
    return f"dp_bench_agent_{user_id}"


# Agent budgets the benchmark never reaches: it measures the checks, not the refusals.
AGENT_MAX_PRICE, AGENT_DAILY_LIMIT = 100_00, 1_000_000_00


def article_slug(n: int) -> str:
    return f"dispatch-{n}"


class Progress:
    """A progress bar on stderr (no dependency), redrawn at most ten times a second."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self.done = label, max(total, 1), 0
        self.started = self.drawn = time.monotonic()

    def advance(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.drawn >= 0.1 or self.done >= self.total:
            self.drawn = now
            self.draw(now)

    def draw(self, now: float) -> None:
        share = min(self.done / self.total, 1.0)
        bar = "#" * int(share * 30)
        rate = self.done / max(now - self.started, 1e-6)
        sys.stderr.write(
            f"\r  {self.label:<22} [{bar:<30}] {share:6.1%} {self.done:>11,} rows {rate:>9,.0f}/s"
        )
        if self.done >= self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _batches(rows: Iterable[tuple[Any, ...]], size: int) -> Iterator[list[tuple[Any, ...]]]:
    batch: list[tuple[Any, ...]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class Loader:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"

    def load(
        self, table: str, columns: list[str], rows: Iterable[tuple[Any, ...]], total: int
    ) -> None:
        progress = Progress(table, total)
        raw = self.engine.raw_connection()
        try:
            cursor = raw.cursor()
            if self.postgres:
                cursor.execute("SET session_replication_role = replica")
                with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    for batch in _batches(rows, 5000):
                        for row in batch:
                            copy.write_row(row)
                        progress.advance(len(batch))
            else:
                marks = ", ".join("?" for _ in columns)
                sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608 - our own table names
                for batch in _batches(rows, 5000):
                    cursor.executemany(sql, [tuple(_sqlite(v) for v in row) for row in batch])
                    progress.advance(len(batch))
            raw.commit()
        finally:
            raw.close()


def _sqlite(value: Any) -> Any:
    """What the app's column types store on SQLite."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


def reset_schema(url: str) -> None:
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        path.parent.mkdir(parents=True, exist_ok=True)
    else:
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    command.upgrade(alembic_config(url), "head")


def seed(url: str, scale: Scale) -> None:
    started = time.monotonic()
    sys.stderr.write(
        f"seeding {scale.articles:,} articles, {scale.readers:,} readers, "
        f"{scale.entitlements:,} entitlements\n"
    )
    reset_schema(url)
    engine = create_engine(url)  # plain engine: no foreign-key pragma on SQLite
    loader = Loader(engine)
    _load_users(loader, scale)
    _load_catalog(loader, scale)
    _load_entitlements(loader, scale)
    _load_wallets(loader, scale)
    _finish(engine, loader.postgres)
    engine.dispose()
    sys.stderr.write(f"seeded in {time.monotonic() - started:.0f} s\n")


def _load_users(loader: Loader, scale: Scale) -> None:
    # One real hash for everybody: hashing millions of passwords would be the benchmark.
    hashed = generate_password_hash(PASSWORD, method="scrypt")
    last = scale.bulk_start + scale.bulk_readers

    def rows() -> Iterator[tuple[Any, ...]]:
        yield (PUBLISHER_ID, "editor@bench.example", hashed, "publisher", BASE_TIME)
        yield (BENCH_READER_ID, BENCH_READER_EMAIL, hashed, "reader", BASE_TIME)
        for uid in range(POOL_START, last):
            yield (uid, f"reader{uid}@bench.example", hashed, "reader", BASE_TIME)

    loader.load("users", ["id", "email", "password_hash", "role", "created_at"], rows(), last - 1)
    tokens = [
        (
            i + 1,
            uid,
            "bench",
            hashlib.sha256(pool_token(uid).encode()).hexdigest(),
            pool_token(uid)[:9],
            BASE_TIME,
        )
        for i, uid in enumerate([BENCH_READER_ID, *range(POOL_START, scale.bulk_start)])
    ]
    pool = range(POOL_START, scale.bulk_start)
    agents = [
        (
            len(tokens) + i + 1,
            uid,
            "bench agent",
            hashlib.sha256(agent_token(uid).encode()).hexdigest(),
            agent_token(uid)[:9],
            BASE_TIME,
            "agent",
            AGENT_MAX_PRICE,
            AGENT_DAILY_LIMIT,
            "usd",
        )
        for i, uid in enumerate(pool)
    ]
    columns = ["id", "user_id", "name", "token_hash", "prefix", "created_at"]
    loader.load("api_tokens", columns, tokens, len(tokens))
    budget = ["kind", "max_price_amount", "daily_limit_amount", "budget_currency"]
    loader.load("api_tokens", [*columns, *budget], agents, len(agents))


def _load_catalog(loader: Loader, scale: Scale) -> None:
    body = (
        "A dispatch benchmark body. It has a few sentences, a [link](https://example.org) "
        "and enough words to look like a short news item.\n\nSecond paragraph."
    )
    html, digest = render_markdown(body), text_sha256(body)
    claims = json.dumps(
        [
            {
                "claim": "The figure is right.",
                "verdict": "supported",
                "sources": [{"url": "https://example.org/a", "title": "Source"}],
                "note": "",
            }
        ]
    )
    n = scale.articles

    def when(i: int) -> datetime:
        return BASE_TIME + timedelta(seconds=i)

    def article_rows(i_range: range) -> Iterator[tuple[Any, ...]]:
        for i in i_range:
            yield (
                i,
                article_slug(i),
                f"Dispatch number {i}",
                f"The teaser of dispatch {i}, free for anyone to read.",
                39,
                "usd",
                "published",
                when(i),
                when(i),
                when(i),
                PUBLISHER_ID,
                i,
                i,
            )

    loader.load(
        "articles",
        [
            "id",
            "slug",
            "title",
            "teaser",
            "price_amount",
            "price_currency",
            "status",
            "published_at",
            "created_at",
            "updated_at",
            "author_id",
            "live_revision_id",
            "latest_revision_id",
        ],
        article_rows(range(1, n + 1)),
        n,
    )
    loader.load(
        "article_revisions",
        ["id", "article_id", "number", "body_markdown", "body_html", "body_sha256", "created_at"],
        ((i, i, 1, body, html, digest, when(i)) for i in range(1, n + 1)),
        n,
    )
    loader.load(
        "verification_reports",
        [
            "id",
            "revision_id",
            "body_sha256",
            "verifier",
            "checked_at",
            "claims",
            "supported_count",
            "weak_count",
            "unverified_count",
            "contradicted_count",
            "created_at",
        ],
        ((i, i, digest, "bench", when(i), claims, 1, 0, 0, 0, when(i)) for i in range(1, n + 1)),
        n,
    )


def _load_entitlements(loader: Loader, scale: Scale) -> None:
    """The bench reader owns the page under test; bulk readers own spread-out articles."""
    readers, articles = scale.bulk_readers, scale.articles
    total = min(scale.entitlements, readers * articles + 1)

    def rows() -> Iterator[tuple[Any, ...]]:
        yield (1, BENCH_READER_ID, full_article(scale), "grant", BASE_TIME)
        for j in range(total - 1):
            reader, k = j % readers, j // readers  # k-th article of this reader: all distinct
            article = (k + reader * 31) % articles + 1
            yield (j + 2, scale.bulk_start + reader, article, "grant", BASE_TIME)

    loader.load(
        "entitlements", ["id", "user_id", "article_id", "source", "created_at"], rows(), total
    )


def _load_wallets(loader: Loader, scale: Scale) -> None:
    pool = list(range(POOL_START, scale.bulk_start))
    loader.load(
        "wallets",
        ["id", "user_id", "currency", "balance", "open_disputes", "created_at"],
        ((i + 1, uid, "usd", WALLET_FUNDS, 0, BASE_TIME) for i, uid in enumerate(pool)),
        len(pool),
    )
    loader.load(
        "ledger_entries",
        ["id", "wallet_id", "kind", "amount", "reference", "note", "created_at"],
        (
            (i + 1, i + 1, "adjustment", WALLET_FUNDS, f"bench-funds:{uid}", "bench", BASE_TIME)
            for i, uid in enumerate(pool)
        ),
        len(pool),
    )


def _finish(engine: Engine, postgres: bool) -> None:
    """Sequences past the loaded ids, fresh planner statistics, and the catalog version."""
    tables = [
        "users",
        "api_tokens",
        "articles",
        "article_revisions",
        "verification_reports",
        "entitlements",
        "wallets",
        "ledger_entries",
    ]
    with engine.begin() as conn:
        conn.execute(text("UPDATE catalog_state SET version = version + 1 WHERE id = 1"))
        if postgres:
            for table in tables:
                conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608
                        f"(SELECT coalesce(max(id), 1) FROM {table}))"
                    )
                )
    if postgres:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            sys.stderr.write("  vacuum analyze...\n")
            conn.execute(text("VACUUM ANALYZE"))
    else:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))


def teaser_article(scale: Scale) -> int:
    """The newest dispatch: the one being shared widely, on the front page."""
    return scale.articles


def full_article(scale: Scale) -> int:
    return max(scale.articles - 1, 1)
