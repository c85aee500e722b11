"""The read gate: the one place that decides who reads an article's full text."""

from __future__ import annotations

from enum import Enum

from sqlalchemy import exists, select

from models import Article, Entitlement, User, db


class Access(Enum):
    HIDDEN = "hidden"  # not published and not readable by this caller: a 404
    TEASER = "teaser"  # the teaser and the offer
    FULL = "full"  # the whole text and its verifier report


def is_entitled(user: User, article: Article) -> bool:
    return bool(
        db.session.scalar(
            select(
                exists().where(Entitlement.user_id == user.id, Entitlement.article_id == article.id)
            )
        )
    )


def read_access(user: User | None, article: Article) -> Access:
    if user is not None and user.is_publisher:
        return Access.FULL
    if article.is_published:
        if article.is_free:
            return Access.FULL
        if user is not None and is_entitled(user, article):
            return Access.FULL
        return Access.TEASER
    # Unpublished: a reader who paid for it keeps reading the text they bought.
    if article.live_revision_id is not None and user is not None and is_entitled(user, article):
        return Access.FULL
    return Access.HIDDEN


def entitled_article_ids(user: User | None, article_ids: list[int]) -> set[int]:
    """Which of these articles the user may read in full (for badges on listings)."""
    if user is None or not article_ids:
        return set()
    if user.is_publisher:
        return set(article_ids)
    rows = db.session.scalars(
        select(Entitlement.article_id).where(
            Entitlement.user_id == user.id, Entitlement.article_id.in_(article_ids)
        )
    )
    return set(rows)
