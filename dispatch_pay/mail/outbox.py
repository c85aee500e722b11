"""Queueing mail: a row in the caller's transaction, rendered from templates.

Nothing here talks to a mail server: the change that causes a message and the message
commit (or roll back) together, and `flask send-mail` delivers what was committed.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from collections.abc import Mapping
from datetime import timedelta
from email.headerregistry import Address
from email.utils import parseaddr
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from flask import Flask, current_app, has_request_context, url_for
from sqlalchemy import ColumnElement, func, or_, select

from dispatch_pay.errors import DomainError
from models import OutboxMessage, db, utcnow

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

# Mail that anyone can make the site send to any address (sign-in links, resets, email
# changes) is limited per recipient, so the forms cannot be used to mail-bomb a stranger.
RECIPIENT_WINDOW = timedelta(hours=1)
RECIPIENT_LIMIT = 5
UNSAFE_HEADER_CHARS = frozenset("\r\n\0")


def header_injection(*values: str) -> bool:
    return any(ch in UNSAFE_HEADER_CHARS for value in values for ch in value)


def check_address(address: str, field: str = "email") -> str:
    """A bare address fit for a To: header; 422 (nothing queued) for anything else."""
    parsed = parseaddr(address)[1]
    if header_injection(address) or not parsed or parsed != address.strip() or "@" not in parsed:
        raise DomainError(
            "invalid_fields",
            "That is not an email address mail can be sent to.",
            status=422,
            fields={field: ["Not a valid email address."]},
        )
    try:
        Address(addr_spec=parsed)
    except (ValueError, IndexError) as exc:
        raise DomainError(
            "invalid_fields",
            "That is not an email address mail can be sent to.",
            status=422,
            fields={field: ["Not a valid email address."]},
        ) from exc
    return parsed


def _like_literal(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _same_mailbox(address: str) -> ColumnElement[bool]:
    """`to_address` is this mailbox, with or without a `+tag`: user+1@ and user+2@ are
    both delivered to user@, so they share one limit."""
    local, at, domain = address.rpartition("@")
    if not at:
        return OutboxMessage.to_address == address
    base = local.split("+", 1)[0]
    # Addresses are stored as the forms normalise them (lower case), so no lower() here.
    return or_(
        OutboxMessage.to_address == f"{base}@{domain}",
        OutboxMessage.to_address.like(
            f"{_like_literal(base)}+%@{_like_literal(domain)}", escape="\\"
        ),
    )


def recipient_over_limit(address: str, kinds: tuple[str, ...]) -> bool:
    """True when `address`'s mailbox already got RECIPIENT_LIMIT messages of `kinds` in
    the window."""
    since = utcnow() - RECIPIENT_WINDOW
    count = db.session.scalar(
        select(func.count(OutboxMessage.id)).where(
            _same_mailbox(address),
            OutboxMessage.kind.in_(kinds),
            OutboxMessage.created_at >= since,
        )
    )
    return bool(count and count >= RECIPIENT_LIMIT)


def dedupe_message_id(key: str) -> str:
    """The Message-ID of the one message queued for `key` (see `queue_mail_once`)."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:40]
    return f"<{digest}@{address_domain(current_app.config['MAIL_FROM'])}>"


def already_queued(keys: list[str]) -> bool:
    """True when a message was queued under any of these dedupe keys."""
    if not keys:
        return False
    ids = [dedupe_message_id(key) for key in keys]
    found = db.session.scalar(
        select(OutboxMessage.id).where(OutboxMessage.message_id.in_(ids)).limit(1)
    )
    return found is not None


def queue_mail_once(
    dedupe_key: str, kind: str, to: str, subject: str, **context: Any
) -> OutboxMessage | None:
    """`queue_mail`, unless a message was already queued under `dedupe_key` (then None).

    The key becomes the Message-ID, which is unique in the outbox, so even two
    transactions racing on the same key cannot both commit a message.
    """
    if already_queued([dedupe_key]):
        return None
    return queue_mail(kind, to, subject, dedupe_key=dedupe_key, **context)


def queue_mail(
    kind: str, to: str, subject: str, *, dedupe_key: str | None = None, **context: Any
) -> OutboxMessage:
    """Render `mail/<kind>.txt` and `.html` and add the message to the outbox (flush only)."""
    address = check_address(to)
    if header_injection(subject):
        raise DomainError("invalid_fields", "The subject cannot contain line breaks.", status=422)
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    text_body, html_body = mail_bodies(app, kind, subject, context)
    message = OutboxMessage(
        kind=kind,
        to_address=address,
        subject=subject,
        text_body=text_body,
        html_body=html_body,
        message_id=(
            dedupe_message_id(dedupe_key) if dedupe_key is not None else new_message_id(app.config)
        ),
        next_attempt_at=utcnow(),
    )
    db.session.add(message)
    db.session.flush()
    return message


def mail_bodies(app: Flask, kind: str, subject: str, context: dict[str, Any]) -> tuple[str, str]:
    """`mail/<kind>.txt` and `.html` rendered, without the page context processors and
    with no context pushed (mail is also queued by webhooks, command-line runs, and a
    credit made before Flask)."""
    context = {"site_name": app.config["SITE_NAME"], "subject": subject, **context}
    environment = app.jinja_env
    return (
        environment.get_template(f"mail/{kind}.txt").render(context),
        environment.get_template(f"mail/{kind}.html").render(context),
    )


def new_message_id(config: Mapping[str, Any]) -> str:
    return f"<{secrets.token_hex(16)}@{address_domain(config['MAIL_FROM'])}>"


def absolute_url(endpoint: str, **values: Any) -> str:
    """A link for a message: PUBLIC_BASE_URL when set, else the request's origin; also
    outside requests (a webhook retried by `reconcile`, a CLI command)."""
    if not current_app.config.get("PUBLIC_BASE_URL") and has_request_context():
        return url_for(endpoint, _external=True, **values)
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    return absolute_url_of(app, endpoint, values)


def absolute_url_of(
    app: Flask,
    endpoint: str,
    values: dict[str, Any],
    environ: WSGIEnvironment | None = None,
) -> str:
    """`absolute_url` with no context pushed: `environ` is the request's, if any."""
    base = app.config.get("PUBLIC_BASE_URL")
    if not base and environ is not None:  # as url_for(_external=True) in that request
        adapter = app.create_url_adapter(app.request_class(environ))
        assert adapter is not None
        return adapter.build(endpoint, values, force_external=True)
    parts = urlsplit(base or f"http://{app.config.get('SERVER_NAME') or 'localhost'}")
    adapter = app.url_map.bind(
        parts.netloc, script_name=parts.path.rstrip("/") or None, url_scheme=parts.scheme
    )
    return adapter.build(endpoint, values, force_external=True)


@functools.lru_cache(maxsize=64)
def address_domain(from_header: str) -> str:
    _name, address = parseaddr(from_header)
    return address.rpartition("@")[2] or "localhost"
