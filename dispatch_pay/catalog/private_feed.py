"""A reader's private feed: RSS 2.0 of their library, full text, behind a secret URL.

The secret is shown to its reader again at any time (see capability_urls); making a
new one replaces the row, so the old URL stops working at once. Every item passes the
read gate at the moment the feed is fetched: a refunded or withdrawn article drops out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from dispatch_pay.catalog.capability_urls import (
    derive_secret,
    matches,
    new_nonce,
    secret_hash,
    well_formed,
)
from dispatch_pay.catalog.gate import Access, read_access
from dispatch_pay.catalog.services import LibraryItem, library
from dispatch_pay.errors import not_found
from models import PrivateFeed, Purchase, User, db, utcnow

PURPOSE = "feed"


def feed_secret(user: User) -> str:
    """The reader's current secret, made on first use."""
    feed = db.session.scalar(select(PrivateFeed).where(PrivateFeed.user_id == user.id))
    if feed is None:
        return new_feed_secret(user)
    return derive_secret(PURPOSE, feed.nonce)


def new_feed_secret(user: User) -> str:
    nonce = new_nonce()
    secret = derive_secret(PURPOSE, nonce)
    feed = db.session.scalar(
        select(PrivateFeed).where(PrivateFeed.user_id == user.id).with_for_update()
    )
    if feed is None:
        try:
            with db.session.begin_nested():
                db.session.add(
                    PrivateFeed(user_id=user.id, nonce=nonce, secret_hash=secret_hash(secret))
                )
        except IntegrityError:
            # A parallel first request made it: that secret is the reader's now.
            return feed_secret(user)
        return secret
    feed.nonce = nonce
    feed.secret_hash = secret_hash(secret)
    feed.created_at = utcnow()
    db.session.flush()
    return secret


def reader_for_secret(secret: str) -> User:
    if not well_formed(secret):
        raise not_found("feed")
    feed = db.session.scalar(
        select(PrivateFeed).where(PrivateFeed.secret_hash == secret_hash(secret))
    )
    if feed is None or not matches(feed.secret_hash, secret):
        raise not_found("feed")
    user = db.session.get(User, feed.user_id)
    if user is None:
        raise not_found("feed")
    return user


@dataclass(frozen=True)
class PrivateFeedContent:
    items: list[LibraryItem]
    last_modified: datetime | None


def feed_items(user: User) -> PrivateFeedContent:
    items = [i for i in library(user) if read_access(user, i.article) is Access.FULL]
    # A refund takes an item out: its time moves Last-Modified too.
    refunded = db.session.scalar(
        select(func.max(Purchase.refunded_at)).where(Purchase.user_id == user.id)
    )
    stamps = [i.acquired_at for i in items] + [
        i.article.updated_at for i in items if i.article.updated_at is not None
    ]
    if refunded is not None:
        stamps.append(refunded)
    return PrivateFeedContent(items=items, last_modified=max(stamps) if stamps else None)
