"""Telling an article's buyers that what they bought was corrected.

`announce_correction` is called in the transaction of every change recorded after
the first publication (new text, replaced report, withdrawal, return). Readers see
these changes as notices in their library (`library_notices`), and by mail:
`correction_mail.mail_buyers`, registered with `on_correction` at app creation, queues
one message per buyer in the same transaction, so a notice is never lost or sent for
a change that rolled back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from models import Article, Entitlement, Manifest, User, db

CorrectionListener = Callable[[Article, Manifest, list[int]], None]
_listeners: list[CorrectionListener] = []


def on_correction(listener: CorrectionListener) -> CorrectionListener:
    """Register a function called with (article, manifest, buyer ids) for every correction
    (once: registering the same function again, e.g. by a second app, changes nothing)."""
    if listener not in _listeners:
        _listeners.append(listener)
    return listener


def buyer_ids(article: Article) -> list[int]:
    return list(
        db.session.scalars(
            select(Entitlement.user_id)
            .where(Entitlement.article_id == article.id)
            .order_by(Entitlement.user_id)
        )
    )


def announce_correction(article: Article, manifest: Manifest) -> None:
    if not _listeners:
        return
    buyers = buyer_ids(article)
    for listener in list(_listeners):
        listener(article, manifest, buyers)


@dataclass(frozen=True)
class LibraryNotice:
    article_id: int
    at: datetime
    what: str


def library_notices(user: User) -> dict[int, list[LibraryNotice]]:
    """Corrections of articles the reader owns made after they got them, newest first."""
    rows = db.session.execute(
        select(Manifest.article_id, Manifest.created_at, Manifest.change)
        .join(Entitlement, Entitlement.article_id == Manifest.article_id)
        .where(
            Entitlement.user_id == user.id,
            Manifest.sequence > 1,
            Manifest.created_at > Entitlement.created_at,
        )
        .order_by(Manifest.article_id, Manifest.sequence.desc())
    ).all()
    notices: dict[int, list[LibraryNotice]] = {}
    for article_id, at, what in rows:
        notices.setdefault(article_id, []).append(LibraryNotice(article_id, at, what))
    return notices
