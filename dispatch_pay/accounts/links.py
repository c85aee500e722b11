"""Mailed one-time links: sign-in (and sign-up), password reset, email change.

Only the SHA-256 of a link's token is stored. A link is valid once, until it expires,
and only for the address it was mailed to. Asking for a sign-in or reset link answers
the same, and does the same work, whether or not the address has an account.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import select, update

from dispatch_pay.accounts import services
from dispatch_pay.accounts.sessions import begin_session, end_sessions
from dispatch_pay.errors import DomainError
from dispatch_pay.mail.outbox import absolute_url, queue_mail, recipient_over_limit
from models import (
    LINK_EMAIL_CHANGE,
    LINK_PASSWORD_RESET,
    LINK_SIGN_IN,
    AccountLink,
    User,
    db,
    utcnow,
)

LIFETIMES = {
    LINK_SIGN_IN: timedelta(minutes=15),
    LINK_PASSWORD_RESET: timedelta(hours=1),
    LINK_EMAIL_CHANGE: timedelta(hours=1),
}
# Mail anyone can ask the site to send to an address; limited per recipient.
UNSOLICITED_KINDS = (
    "sign_in",
    "sign_up",
    "password_reset",
    "password_reset_unknown",
    "email_change",
)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def invalid_link() -> DomainError:
    return DomainError(
        "link_invalid",
        "This link cannot be used: it has expired, it was used already, or it is not a link "
        "we sent. Nothing was changed. Ask for a new one.",
        status=400,
    )


def _new_link(purpose: str, email: str, user: User | None) -> str:
    token = secrets.token_urlsafe(32)
    db.session.add(
        AccountLink(
            purpose=purpose,
            token_hash=_digest(token),
            email=email,
            user_id=user.id if user else None,
            expires_at=utcnow() + LIFETIMES[purpose],
        )
    )
    return token


def _may_mail(address: str) -> bool:
    return not recipient_over_limit(address, UNSOLICITED_KINDS)


def request_sign_in_link(email: str) -> None:
    """Mail a sign-in link, or a sign-up link for an address without an account."""
    if not _may_mail(email):
        return
    user = services.find_user_by_email(email)
    token = _new_link(LINK_SIGN_IN, email, user)
    link = absolute_url("accounts.sign_in_link", token=token)
    if user is not None:
        queue_mail("sign_in", email, "Your sign-in link", link=link)
    else:
        queue_mail("sign_up", email, "Create your account", link=link)


def request_password_reset(email: str) -> None:
    if not _may_mail(email):
        return
    user = services.find_user_by_email(email)
    if user is None:
        # The same writes as for an account (a link row, a message), so that the time
        # taken does not tell who has one. This link's token is never sent: it opens nothing.
        _new_link(LINK_PASSWORD_RESET, email, None)
        signup_url = absolute_url("accounts.signup")
        queue_mail("password_reset_unknown", email, "Password reset", signup_url=signup_url)
        return
    token = _new_link(LINK_PASSWORD_RESET, email, user)
    link = absolute_url("accounts.password_reset_link", token=token)
    queue_mail("password_reset", email, "Reset your password", link=link)


def request_email_change(user: User, new_email: str) -> None:
    if services.find_user_by_email(new_email) is not None:
        raise services.email_taken()
    if not _may_mail(new_email):
        return
    token = _new_link(LINK_EMAIL_CHANGE, new_email, user)
    link = absolute_url("accounts.email_change_link", token=token)
    queue_mail(
        "email_change", new_email, "Confirm your new address", link=link, new_email=new_email
    )


def peek(token: str, purpose: str) -> AccountLink:
    """The link if it can still be used (for showing its confirmation page); else 400."""
    link = db.session.scalar(
        select(AccountLink).where(
            AccountLink.token_hash == _digest(token), AccountLink.purpose == purpose
        )
    )
    if link is None or link.used_at is not None or link.expires_at <= utcnow():
        raise invalid_link()
    if link.user_id is not None:
        user = db.session.get(User, link.user_id)
        # Bound to the address it was mailed to: an account whose email changed since
        # (or was erased) cannot be entered with it. Email changes are bound to the user.
        if user is None or (purpose != LINK_EMAIL_CHANGE and user.email != link.email):
            raise invalid_link()
    return link


def _consume(token: str, purpose: str) -> AccountLink:
    """Mark the link used, exactly once even when two requests race for it."""
    link = peek(token, purpose)
    now = utcnow()
    claimed = db.session.execute(
        update(AccountLink)
        .where(AccountLink.id == link.id, AccountLink.used_at.is_(None))
        .values(used_at=now)
    )
    if not getattr(claimed, "rowcount", 0):
        raise invalid_link()
    db.session.refresh(link)
    return link


def sign_in_with_link(token: str) -> User:
    link = _consume(token, LINK_SIGN_IN)
    user = db.session.get(User, link.user_id) if link.user_id is not None else None
    if user is None:
        # The reader confirmed a sign-up link: the account is created now, with a
        # password nobody knows (they can set one with a reset link).
        user = services.find_user_by_email(link.email) or services.register_user(
            link.email, secrets.token_urlsafe(32)
        )
    begin_session(user)
    return user


def reset_password_with_link(token: str, new_password: str) -> User:
    link = _consume(token, LINK_PASSWORD_RESET)
    user = db.session.get(User, link.user_id)
    if user is None:
        raise invalid_link()
    services.set_password(user, new_password)
    end_sessions(user)
    begin_session(user)
    return user


def change_email_with_link(token: str) -> User:
    link = _consume(token, LINK_EMAIL_CHANGE)
    user = db.session.get(User, link.user_id)
    if user is None:
        raise invalid_link()
    if services.find_user_by_email(link.email) is not None:
        raise services.email_taken()
    old_email = user.email
    user.email = link.email
    db.session.flush()
    queue_mail("email_changed", old_email, "Your address was changed", new_email=link.email)
    return user
