"""Gift links: a reader who owns an article lets a few people read it without buying.

The number of people is fixed when the link is made (the article's own number, else the
site's), and it is the giver's number for that article, not each link's: a reader who
makes ten links still lets only that many people read (the publisher's number would mean
nothing otherwise). Each person counts once: a logged-in reader by account, anyone else
by a random key kept in their session. Whether a visitor may read is the read gate's decision
(`GiftPass`); this module only finds the link, locks it, and counts the read.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from dispatch_pay.catalog.capability_urls import (
    derive_secret,
    matches,
    new_nonce,
    secret_hash,
    well_formed,
)
from dispatch_pay.catalog.gate import Access, GiftPass, Holdings, is_entitled, read_access
from dispatch_pay.errors import DomainError, not_found
from dispatch_pay.urls import absolute_url
from models import (
    DEFAULT_GIFT_READS,
    Article,
    GiftLink,
    GiftRead,
    PublicationSettings,
    User,
    db,
    utcnow,
)

PURPOSE = "gift"
MAX_GIFT_READS = 100


@dataclass(frozen=True)
class GiftView:
    gift: GiftLink
    slug: str
    token: str
    reads_left: int

    @property
    def url(self) -> str:
        return absolute_url("catalog.gift_page", token=self.token)


def reads_per_link(article: Article) -> int:
    if article.gift_reads is not None:
        return article.gift_reads
    settings = db.session.get(PublicationSettings, 1)
    return settings.gift_reads if settings is not None else DEFAULT_GIFT_READS


def reads_used(gift: GiftLink) -> int:
    return int(
        db.session.scalar(select(func.count(GiftRead.id)).where(GiftRead.gift_id == gift.id)) or 0
    )


def people_reached(gift: GiftLink) -> int:
    """How many people have read this article through any of its giver's links."""
    return int(
        db.session.scalar(
            select(func.count(func.distinct(GiftRead.visitor)))
            .join(GiftLink, GiftLink.id == GiftRead.gift_id)
            .where(GiftLink.giver_id == gift.giver_id, GiftLink.article_id == gift.article_id)
        )
        or 0
    )


def reads_left(gift: GiftLink) -> int:
    """Reads this link can still give: its own, within what its giver has left."""
    own = gift.reads_allowed - reads_used(gift)
    return max(min(own, gift.reads_allowed - people_reached(gift)), 0)


def view(gift: GiftLink) -> GiftView:
    left = 0 if gift.revoked_at else reads_left(gift)
    slug = db.session.scalar(select(Article.slug).where(Article.id == gift.article_id)) or ""
    return GiftView(gift=gift, slug=slug, token=derive_secret(PURPOSE, gift.nonce), reads_left=left)


def may_give(giver: User, article: Article, holdings: Holdings | None = None) -> bool:
    """`holdings`: the giver's, read with the article (saves the entitlement query)."""
    return (
        not giver.is_publisher
        and article.is_published
        and not article.is_free
        and (holdings.entitled if holdings is not None else is_entitled(giver, article))
    )


def create_gift(giver: User, article: Article) -> GiftView:
    if giver.is_publisher or not is_entitled(giver, article):
        raise DomainError(
            "forbidden", "Only a reader who owns this dispatch can give it.", status=403
        )
    if not article.is_published or article.is_free:
        raise DomainError(
            "not_giftable", "Only published paid dispatches can be given.", status=409
        )
    nonce = new_nonce()
    gift = GiftLink(
        article_id=article.id,
        giver_id=giver.id,
        nonce=nonce,
        token_hash=secret_hash(derive_secret(PURPOSE, nonce)),
        reads_allowed=reads_per_link(article),
    )
    db.session.add(gift)
    db.session.flush()
    return view(gift)


def gifts_of(giver: User, article: Article) -> list[GiftView]:
    rows = db.session.scalars(
        select(GiftLink)
        .where(GiftLink.giver_id == giver.id, GiftLink.article_id == article.id)
        .order_by(GiftLink.id.desc())
    )
    return [view(g) for g in rows]


def revoke_gift(giver: User, gift_id: int) -> GiftView:
    gift = db.session.get(GiftLink, gift_id)
    if gift is None or gift.giver_id != giver.id:
        raise not_found("gift")  # someone else's gift is no more visible than a missing one
    if gift.revoked_at is None:
        gift.revoked_at = utcnow()
        db.session.flush()
    return view(gift)


def find_gift(token: str) -> GiftLink:
    if not well_formed(token):
        raise not_found("gift")
    gift = db.session.scalar(select(GiftLink).where(GiftLink.token_hash == secret_hash(token)))
    if gift is None or not matches(gift.token_hash, token):
        raise not_found("gift")
    return gift


def visitor_key(user: User | None, anonymous_key: str) -> str:
    return f"user:{user.id}" if user is not None else f"anon:{anonymous_key}"


def _pass_for(gift: GiftLink, visitor: str) -> GiftPass:
    already = db.session.scalar(
        select(GiftRead.id).where(GiftRead.gift_id == gift.id, GiftRead.visitor == visitor)
    )
    return GiftPass(
        article_id=gift.article_id,
        giver_id=gift.giver_id,
        revoked=gift.revoked_at is not None,
        already_read=already is not None,
        reads_left=reads_left(gift),
    )


@dataclass(frozen=True)
class GiftOpening:
    article: Article
    access: Access
    gift: GiftLink
    can_claim: bool  # a read is left for this visitor: the page offers to take it


def open_gift(token: str, user: User | None, anonymous_key: str, *, claim: bool) -> GiftOpening:
    """Open a gift link for one visitor. Only `claim` (the reader pressing the button, a
    POST) takes a read: link previews and prefetchers only GET, and must not use it up.

    All of the giver's links for the article are locked, in id order (PostgreSQL), or the
    database is (SQLite, BEGIN IMMEDIATE) while reads are counted, so parallel visitors,
    through one link or several, never take more reads than the giver has.
    """
    gift = find_gift(token)
    if claim:
        _lock_givers_links(gift)
    article = db.session.get(Article, gift.article_id)
    if article is None:
        raise not_found("gift")
    visitor = visitor_key(user, anonymous_key)
    gift_pass = _pass_for(gift, visitor)
    # Before a claim, the link opens the text only for a visitor it was claimed by.
    shown = gift_pass if claim or gift_pass.already_read else None
    access = read_access(user, article, gift=shown)
    if access is Access.HIDDEN:
        raise not_found("gift")
    # Only a read the gift itself grants counts: an owner opening it costs nothing.
    if (
        claim
        and access is Access.FULL
        and not gift_pass.already_read
        and read_access(user, article) is not Access.FULL
    ):
        _count_read(gift, visitor, user)
    can_claim = access is not Access.FULL and (
        read_access(user, article, gift=gift_pass) is Access.FULL
    )
    return GiftOpening(article=article, access=access, gift=gift, can_claim=can_claim)


def _lock_givers_links(gift: GiftLink) -> None:
    db.session.execute(
        select(GiftLink.id)
        .where(GiftLink.giver_id == gift.giver_id, GiftLink.article_id == gift.article_id)
        .order_by(GiftLink.id)
        .with_for_update()
    ).all()
    db.session.refresh(gift)  # a revoke that committed while this request waited


def _count_read(gift: GiftLink, visitor: str, user: User | None) -> None:
    read = GiftRead(
        gift_id=gift.id,
        article_id=gift.article_id,
        visitor=visitor,
        reader_id=user.id if user is not None else None,
    )
    try:
        with db.session.begin_nested():
            db.session.add(read)
    except IntegrityError:
        pass  # the same visitor, counted by a parallel request: once is enough
