"""Browser logins kept on the server: the cookie carries a random session secret, not the
user id, and deleting the session's row ends it for every copy of the cookie."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from flask import after_this_request, g, request, session
from sqlalchemy import bindparam, delete, select
from sqlalchemy.orm import joinedload

from dispatch_pay.accounts import devices
from models import User, UserSession, db, utcnow

SESSION_KEY = "sid"
# last_seen_at is written at most this often, so reading pages stays read-only.
TOUCH_INTERVAL = timedelta(minutes=5)
# A session nobody used for this long is over.
IDLE_LIMIT = timedelta(days=30)


def session_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def begin_session(user: User) -> UserSession:
    """Log `user` in to this browser with a fresh session.

    Everything in the old cookie goes, the CSRF token included, so a token (or a session
    id) planted before login is worthless after it."""
    end_current_session()
    secret = secrets.token_urlsafe(32)
    record = UserSession(
        user=user,
        token_hash=session_digest(secret),
        user_agent=(request.user_agent.string or "")[:255],
        address=(request.remote_addr or "")[:64],
    )
    db.session.add(record)
    db.session.flush()
    session.clear()
    session[SESSION_KEY] = secret
    g._login_user = user
    g.user_session_id = record.id
    email = user.email
    after_this_request(lambda response: devices.remember(response, email))
    return record


def current_session_id() -> int | None:
    session_id: int | None = g.get("user_session_id")
    return session_id


# Built once: it runs on every request that carries a session cookie.
_SESSION_BY_HASH = (
    select(UserSession)
    .where(UserSession.token_hash == bindparam("token_hash"))
    .options(joinedload(UserSession.user))
)


def load_session_user() -> User | None:
    """flask-login's loader: the user of the session the cookie names, if it still exists."""
    secret = session.get(SESSION_KEY)
    if not isinstance(secret, str) or not secret:
        return None
    record = db.session.scalar(_SESSION_BY_HASH, {"token_hash": session_digest(secret)})
    now = utcnow()
    if record is None or now - record.last_seen_at > IDLE_LIMIT:
        session.pop(SESSION_KEY, None)
        return None
    if now - record.last_seen_at > TOUCH_INTERVAL:
        record.last_seen_at = now
    g.user_session_id = record.id
    return record.user


def end_current_session() -> None:
    secret = session.get(SESSION_KEY)
    if isinstance(secret, str) and secret:
        db.session.execute(
            delete(UserSession).where(UserSession.token_hash == session_digest(secret))
        )
    session.clear()
    g.pop("_login_user", None)
    g.pop("user_session_id", None)


def end_sessions(user: User, *, keep: int | None = None) -> int:
    """End every session of `user` (but `keep`); the number ended."""
    statement = delete(UserSession).where(UserSession.user_id == user.id)
    if keep is not None:
        statement = statement.where(UserSession.id != keep)
    result = db.session.execute(statement)
    return int(getattr(result, "rowcount", 0) or 0)


def list_sessions(user: User) -> list[UserSession]:
    return list(
        db.session.scalars(
            select(UserSession)
            .where(UserSession.user_id == user.id)
            .order_by(UserSession.last_seen_at.desc(), UserSession.id.desc())
        )
    )


def end_session(user: User, session_id: int) -> bool:
    result = db.session.execute(
        delete(UserSession).where(UserSession.user_id == user.id, UserSession.id == session_id)
    )
    return bool(getattr(result, "rowcount", 0))


def session_record(session_id: int) -> UserSession | None:
    return db.session.get(UserSession, session_id)
