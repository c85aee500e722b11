"""The declarative base and the `db` object shared by the whole application."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import CheckConstraint, DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Session, scoped_session, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime()}


def _configure_sqlite(engine: Engine) -> None:
    """Make SQLite behave like a real transactional database.

    pysqlite's own transaction handling defers BEGIN and breaks SAVEPOINTs; we emit
    BEGIN ourselves, enforce foreign keys and wait for locks instead of failing.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


POOL_RECYCLE_SECONDS = 1800


def build_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, **kwargs)
        _configure_sqlite(engine)
        return engine
    # No ping on every checkout (a round trip per request): a connection the server
    # dropped fails its request's first statement, which SQLAlchemy reads as a disconnect
    # and answers by invalidating the whole pool (every connection older than the error
    # is replaced on its next checkout); the request answers 503 (errors.py) and the next
    # one gets a fresh connection. Recycling connections after half an hour keeps them
    # clear of idle timeouts in poolers and firewalls.
    kwargs.setdefault("pool_pre_ping", False)
    kwargs.setdefault("pool_recycle", POOL_RECYCLE_SECONDS)
    return create_engine(url, **kwargs)


class Database:
    """Owns the engine and the request-scoped session.

    The web layer commits once per request; services only flush.
    """

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.session: scoped_session[Session] = scoped_session(sessionmaker())

    def configure(self, url: str, **engine_kwargs: Any) -> None:
        if self.engine is not None:
            self.engine.dispose()
        self.engine = build_engine(url, **engine_kwargs)
        self.session.remove()
        self.session = scoped_session(sessionmaker(bind=self.engine, expire_on_commit=False))


db = Database()


def conflict_insert(model: Any) -> Any:
    """`INSERT` into a model's table that takes ON CONFLICT clauses, for the session's
    database: both PostgreSQL and SQLite know `on_conflict_do_nothing/do_update` and
    RETURNING, which lets a unique constraint decide in one statement, without a look-up
    before it or a savepoint around it."""
    from sqlalchemy.dialects.postgresql import insert as postgresql_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    postgres = db.session.get_bind().dialect.name == "postgresql"
    return (postgresql_insert if postgres else sqlite_insert)(model.__table__)


def one_of(column: str, values: type[StrEnum], name: str) -> CheckConstraint:
    """A CHECK that the column holds one of the enum's values (NULL passes, as in SQL)."""
    listed = ", ".join(f"'{member.value}'" for member in values)
    return CheckConstraint(f"{column} IN ({listed})", name=name)
