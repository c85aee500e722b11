"""Accounts: registration, authentication and API tokens."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload
from werkzeug.security import check_password_hash, generate_password_hash

from dispatch_pay.accounts.sessions import begin_session, end_sessions
from dispatch_pay.errors import DomainError
from dispatch_pay.mail.outbox import absolute_url, queue_mail
from dispatch_pay.money import Money
from models import ROLE_PUBLISHER, ROLE_READER, ApiToken, TokenKind, User, db, utcnow

TOKEN_PREFIX = "dp_"  # noqa: S105 - a public prefix, not a secret
# last_used_at is refreshed at most this often, so reads stay reads.
TOKEN_TOUCH_INTERVAL = timedelta(minutes=5)


def hash_password(password: str) -> str:
    return generate_password_hash(password, method=current_app.config["PASSWORD_HASH_METHOD"])


def _dummy_hash() -> str:
    """A hash to check against when the email is unknown, so timing reveals nothing."""
    cached: str | None = current_app.extensions.get("dispatch_pay.dummy_hash")
    if cached is None:
        cached = hash_password(secrets.token_hex(16))
        current_app.extensions["dispatch_pay.dummy_hash"] = cached
    return cached


def find_user_by_email(email: str) -> User | None:
    return db.session.scalar(select(User).where(User.email == email.strip().lower()))


def register_user(email: str, password: str, role: str = ROLE_READER) -> User:
    """Create an account; 409 `email_taken` if the email (in any case) exists."""
    email = email.strip().lower()
    if find_user_by_email(email) is not None:
        raise email_taken()
    user = User(email=email, password_hash=hash_password(password), role=role)
    try:
        with db.session.begin_nested():
            db.session.add(user)
    except IntegrityError as exc:  # a concurrent sign-up won the race
        raise email_taken() from exc
    return user


def email_taken() -> DomainError:
    return DomainError(
        "email_taken",
        "An account with this email already exists.",
        status=409,
        fields={"email": ["An account with this email already exists."]},
    )


def authenticate(email: str, password: str) -> User | None:
    user = find_user_by_email(email)
    if user is None:
        check_password_hash(_dummy_hash(), password)
        return None
    if not check_password_hash(user.password_hash, password):
        return None
    return user


def set_password(user: User, password: str) -> None:
    user.password_hash = hash_password(password)
    db.session.flush()


def require_password(user: User, password: str, field: str = "password") -> None:
    """A signed-in reader confirms a sensitive change; 422 naming `field` when wrong."""
    if not check_password_hash(user.password_hash, password):
        raise DomainError(
            "invalid_credentials",
            "The password is wrong.",
            status=422,
            fields={field: ["The password is wrong."]},
        )


def change_password(user: User, current: str, new: str) -> None:
    """Change the password; every other session of the account ends (the caller's too)."""
    require_password(user, current, "current_password")
    set_password(user, new)
    end_sessions(user)
    begin_session(user)  # this browser stays in, under a new session id
    queue_mail(
        "password_changed",
        user.email,
        "Your password was changed",
        reset_url=absolute_url("accounts.password_reset"),
    )


def ensure_publisher(email: str, password: str | None) -> User:
    """Create a publisher, or promote an existing account (and reset its password if given)."""
    user = find_user_by_email(email)
    if user is None:
        return register_user(email, password or secrets.token_urlsafe(18), role=ROLE_PUBLISHER)
    user.role = ROLE_PUBLISHER
    if password:
        user.password_hash = hash_password(password)
    db.session.flush()
    return user


def token_digest(secret: str) -> str:
    """How an API token's secret is stored (and looked up)."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    secret: str


def issue_token(user: User, name: str = "API token") -> IssuedToken:
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        user=user,
        name=name,
        token_hash=token_digest(secret),
        prefix=secret[: len(TOKEN_PREFIX) + 6],
    )
    db.session.add(token)
    db.session.flush()
    return IssuedToken(token=token, secret=secret)


def issue_agent_token(user: User, name: str, max_price: Money, daily_limit: Money) -> IssuedToken:
    """A token an agent uses to list, read and buy for `user`, within a budget."""
    if user.is_publisher:
        raise DomainError("forbidden", "Agent tokens are for readers.", status=403)
    issued = issue_token(user, name)
    issued.token.kind = TokenKind.AGENT
    issued.token.max_price_amount = max_price.amount
    issued.token.daily_limit_amount = daily_limit.amount
    issued.token.budget_currency = max_price.currency
    db.session.flush()
    return issued


def user_for_token(secret: str) -> User | None:
    token = token_for_secret(secret)
    return token.user if token is not None else None


# Built once (it runs on every API request). Every caller needs the user: one round trip.
_LIVE_TOKEN = (
    select(ApiToken)
    .where(ApiToken.token_hash == bindparam("token_hash"), ApiToken.revoked_at.is_(None))
    .options(joinedload(ApiToken.user))
)


def token_for_secret(secret: str) -> ApiToken | None:
    """The live token with this secret (its user loaded); None if unknown or revoked.

    last_used_at is written at most once per TOKEN_TOUCH_INTERVAL, so a read stays a read.
    """
    token = db.session.scalar(_LIVE_TOKEN, {"token_hash": token_digest(secret)})
    if token is None:
        return None
    now = utcnow()
    if token.last_used_at is None or now - token.last_used_at > TOKEN_TOUCH_INTERVAL:
        token.last_used_at = now
    return token


def list_tokens(user: User, kind: TokenKind | None = None) -> list[ApiToken]:
    query = select(ApiToken).where(ApiToken.user_id == user.id)
    if kind is not None:
        query = query.where(ApiToken.kind == kind)
    return list(db.session.scalars(query.order_by(ApiToken.id.desc())))


def revoke_token(user: User, token_id: int, kind: TokenKind | None = None) -> ApiToken:
    token = db.session.get(ApiToken, token_id)
    if token is None or token.user_id != user.id or (kind is not None and token.kind != kind):
        raise DomainError("not_found", "No such token.", status=404)
    if token.revoked_at is None:
        token.revoked_at = utcnow()
    db.session.flush()
    return token
