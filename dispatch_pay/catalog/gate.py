"""The read gate: the one place that decides who reads an article's full text.

Rights to a text: being a publisher, the article being free, an entitlement (a purchase
or a grant), or a gift: the link itself (`GiftPass`, for whoever opens it) or a read of
a gift kept by a logged-in recipient. A gift opens a text only while its giver still
owns it and the article is published.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from sqlalchemy import Select, exists, select, union
from sqlalchemy.orm import aliased

from models import Article, Entitlement, User, db
from models.readers import GiftLink, GiftRead


class Access(Enum):
    HIDDEN = "hidden"  # not published and not readable by this caller: a 404
    TEASER = "teaser"  # the teaser and the offer
    FULL = "full"  # the whole text and its verifier report


@dataclass(frozen=True)
class GiftPass:
    """A gift link as one visitor presents it, read with the link's row locked."""

    article_id: int
    giver_id: int
    revoked: bool
    already_read: bool  # this visitor was counted before: opening it again costs nothing
    reads_left: int

    @property
    def usable(self) -> bool:
        return not self.revoked and (self.already_read or self.reads_left > 0)


def is_entitled(user: User | int, article: Article | int) -> bool:
    user_id = user if isinstance(user, int) else user.id
    article_id = article if isinstance(article, int) else article.id
    return bool(
        db.session.scalar(
            select(
                exists().where(Entitlement.user_id == user_id, Entitlement.article_id == article_id)
            )
        )
    )


def _kept_gifts(user: User | Any) -> Select[Any]:
    """Articles a logged-in recipient keeps through a gift, while its giver still owns them.

    `user` is a User or a SQL expression of a user id (a bind parameter)."""
    user_id = user.id if isinstance(user, User) else user
    giver_owns = aliased(Entitlement)
    return (
        select(GiftRead.article_id)
        .join(GiftLink, GiftLink.id == GiftRead.gift_id)
        .join(
            giver_owns,
            (giver_owns.user_id == GiftLink.giver_id)
            & (giver_owns.article_id == GiftRead.article_id),
        )
        .where(GiftRead.reader_id == user_id)
    )


def _kept_gift(user: User, article: Article) -> bool:
    query = _kept_gifts(user).where(GiftRead.article_id == article.id)
    return bool(db.session.scalar(select(query.exists())))


def _gift_opens(gift: GiftPass | None, article: Article) -> bool:
    if gift is None or gift.article_id != article.id or not gift.usable:
        return False
    return is_entitled(gift.giver_id, article)


@dataclass(frozen=True)
class Holdings:
    """What the caller holds of one article, read in the statement that loaded it
    (`holdings_columns`), so the gate needs no query of its own on the hot paths."""

    entitled: bool
    kept_gift: bool
    gave_gifts: bool  # the caller made gift links of it (else its page lists none)


def holdings_columns(user_id: Any, article_id: Any) -> list[Any]:
    """EXISTS columns (entitlement, kept gift, own gift links) to select beside the article.

    `user_id` and `article_id` are SQL expressions (bind parameters or columns), so the
    statement can be built once and reused."""
    owned = exists().where(Entitlement.user_id == user_id, Entitlement.article_id == article_id)
    kept = _kept_gifts(user_id).where(GiftRead.article_id == article_id).exists()
    gave = exists().where(GiftLink.giver_id == user_id, GiftLink.article_id == article_id)
    return [owned.label("entitled"), kept.label("kept_gift"), gave.label("gave_gifts")]


def read_access(
    user: User | None,
    article: Article,
    gift: GiftPass | None = None,
    holdings: Holdings | None = None,
) -> Access:
    """The one gate. `holdings`, when given, must be the caller's, read with the article."""

    def entitled() -> bool:
        assert user is not None
        return holdings.entitled if holdings is not None else is_entitled(user, article)

    def kept() -> bool:
        assert user is not None
        return holdings.kept_gift if holdings is not None else _kept_gift(user, article)

    if user is not None and user.is_publisher:
        return Access.FULL
    if article.is_published:
        if article.is_free:
            return Access.FULL
        if user is not None and (entitled() or kept()):
            return Access.FULL
        if _gift_opens(gift, article):
            return Access.FULL
        return Access.TEASER
    # Unpublished: a reader who paid for it keeps reading the text they bought.
    if article.live_revision_id is not None and user is not None and entitled():
        return Access.FULL
    return Access.HIDDEN


def entitled_article_ids(user: User | None, article_ids: list[int]) -> set[int]:
    """Which of these articles the user may read in full (for badges on listings)."""
    if user is None or not article_ids:
        return set()
    if user.is_publisher:
        return set(article_ids)
    owned = select(Entitlement.article_id).where(
        Entitlement.user_id == user.id, Entitlement.article_id.in_(article_ids)
    )
    kept = _kept_gifts(user).where(GiftRead.article_id.in_(article_ids))
    # Kept gifts count only on published articles (the gate's rule); listings show only
    # published articles, so the union needs no status check.
    return set(db.session.scalars(union(owned, kept)))
