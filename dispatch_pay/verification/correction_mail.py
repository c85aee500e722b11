"""Mail to an article's buyers when what they bought is corrected (issue 13, item 7).

One message per buyer and change, queued in the change's transaction (a change that
rolls back mails nobody). It names the article, says what changed (the manifest's
change line: verdict counts, never claims, quotes or any of the paid text), when, and
links to the article and its manifest.

Flood guard: a reader gets at most one correction mail per article per hour
(`MAIL_WINDOW`). Later changes inside that hour are not mailed; they are listed in the
article's corrections and the reader's library, which the mail links to. Publishers
(who are not buyers) and deleted accounts (whose email is erased) get nothing.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from dispatch_pay.mail.outbox import absolute_url, already_queued, queue_mail_once
from models import ROLE_READER, Article, Manifest, User, db

KIND = "correction"
MAIL_WINDOW = timedelta(hours=1)


def dedupe_key(manifest_id: int, user_id: int) -> str:
    return f"{KIND}:{manifest_id}:{user_id}"


def mail_buyers(article: Article, manifest: Manifest, buyer_ids: list[int]) -> None:
    """An `on_correction` listener: queue the correction mail for every buyer due one."""
    if not buyer_ids:
        return
    recent = list(
        db.session.scalars(
            select(Manifest.id).where(
                Manifest.article_id == article.id,
                Manifest.sequence > 1,
                Manifest.id != manifest.id,
                Manifest.created_at > manifest.created_at - MAIL_WINDOW,
            )
        )
    )
    readers = db.session.scalars(
        select(User).where(User.id.in_(buyer_ids), User.role == ROLE_READER).order_by(User.id)
    )
    article_url = absolute_url("catalog.article_page", slug=article.slug)
    manifest_url = absolute_url("catalog_api.get_manifest", slug=article.slug)
    for reader in readers:
        if reader.is_deleted:
            continue
        if already_queued([dedupe_key(m, reader.id) for m in recent]):
            continue
        queue_mail_once(
            dedupe_key(manifest.id, reader.id),
            KIND,
            reader.email,
            f"Correction: {_one_line(article.title)}"[:200],
            title=article.title,
            change=manifest.change,
            at=manifest.created_at,
            article_url=article_url,
            manifest_url=manifest_url,
        )


def _one_line(text: str) -> str:
    return " ".join(text.split())
