"""Sales figures for the publisher: purchases, refunds, top-ups and fees over a period.

Every figure is one aggregate query (GROUP BY in the database), whatever the number
of articles or purchases. Money stays per currency: amounts in different currencies
are never added together.

Definitions (so that consecutive periods add up to the ledger):
- purchases / gross: purchases made in the period, at the price they paid;
- refunded: purchases refunded in the period, whenever they were bought;
- net: gross minus refunded.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, select

from models import PURCHASE_REFUNDED, Article, GiftRead, Purchase, TopUp, db, utcnow

DEFAULT_PERIOD_DAYS = 30
# A chart of more days than this would be unreadable and the query unbounded.
MAX_PERIOD_DAYS = 366 * 3


@dataclass(frozen=True)
class Period:
    """From and to are whole UTC days, both included."""

    start: date
    end: date

    @property
    def lower(self) -> datetime:
        return datetime.combine(self.start, time.min, tzinfo=UTC)

    @property
    def upper(self) -> datetime:
        """Exclusive: the first instant after the last day."""
        return datetime.combine(self.end + timedelta(days=1), time.min, tzinfo=UTC)

    def days(self) -> list[date]:
        return [self.start + timedelta(days=n) for n in range((self.end - self.start).days + 1)]


def default_period(today: date | None = None) -> Period:
    end = today or utcnow().date()
    return Period(end - timedelta(days=DEFAULT_PERIOD_DAYS - 1), end)


def _in(column: Any, period: Period | None) -> list[ColumnElement[bool]]:
    if period is None:
        return []
    return [column >= period.lower, column < period.upper]


@dataclass
class Figures:
    """Counts and per-currency sums for one article, or for all of them."""

    purchases: int = 0
    refunds: int = 0
    gift_reads: int = 0  # people who read it through a reader's gift link
    gross: dict[str, int] = field(default_factory=dict)
    refunded: dict[str, int] = field(default_factory=dict)

    @property
    def net(self) -> dict[str, int]:
        currencies = sorted(set(self.gross) | set(self.refunded))
        return {c: self.gross.get(c, 0) - self.refunded.get(c, 0) for c in currencies}

    def add_sales(self, currency: str, count: int, amount: int) -> None:
        self.purchases += count
        self.gross[currency] = self.gross.get(currency, 0) + amount

    def add_refunds(self, currency: str, count: int, amount: int) -> None:
        self.refunds += count
        self.refunded[currency] = self.refunded.get(currency, 0) + amount


@dataclass
class ArticleSales:
    article_id: int
    slug: str
    title: str
    figures: Figures


@dataclass
class TopUpFigures:
    """Money readers put into wallets; Stripe's fee only where Stripe told us."""

    count: int = 0
    received: dict[str, int] = field(default_factory=dict)
    fees: dict[str, int] = field(default_factory=dict)
    fees_unknown: int = 0


@dataclass
class SalesReport:
    period: Period | None
    articles: list[ArticleSales]
    total: Figures
    topups: TopUpFigures
    daily: dict[str, list[tuple[date, int]]]


def figures_by_article(period: Period | None) -> dict[int, Figures]:
    """Per-article figures: one grouped query for sales, one for refunds."""
    result: dict[int, Figures] = defaultdict(Figures)
    sold = db.session.execute(
        select(
            Purchase.article_id,
            Purchase.currency,
            func.count(Purchase.id),
            func.coalesce(func.sum(Purchase.amount), 0),
        )
        .where(*_in(Purchase.created_at, period))
        .group_by(Purchase.article_id, Purchase.currency)
    ).all()
    for article_id, currency, count, amount in sold:
        result[article_id].add_sales(currency, int(count), int(amount))
    refunded = db.session.execute(
        select(
            Purchase.article_id,
            Purchase.currency,
            func.count(Purchase.id),
            func.coalesce(func.sum(Purchase.amount), 0),
        )
        .where(Purchase.status == PURCHASE_REFUNDED, *_in(Purchase.refunded_at, period))
        .group_by(Purchase.article_id, Purchase.currency)
    ).all()
    for article_id, currency, count, amount in refunded:
        result[article_id].add_refunds(currency, int(count), int(amount))
    gifted = db.session.execute(
        select(GiftRead.article_id, func.count(GiftRead.id))
        .where(*_in(GiftRead.created_at, period))
        .group_by(GiftRead.article_id)
    ).all()
    for article_id, count in gifted:
        result[article_id].gift_reads += int(count)
    return dict(result)


def topup_figures(period: Period | None) -> TopUpFigures:
    rows = db.session.execute(
        select(
            TopUp.currency,
            func.count(TopUp.id),
            func.coalesce(func.sum(TopUp.amount), 0),
            func.count(TopUp.fee),
        )
        .where(TopUp.credited_at.is_not(None), *_in(TopUp.credited_at, period))
        .group_by(TopUp.currency)
    ).all()
    figures = TopUpFigures()
    for currency, count, amount, fees_known in rows:
        figures.count += int(count)
        figures.received[currency] = int(amount)
        figures.fees_unknown += int(count) - int(fees_known)
    # Stripe charges its fee in the balance transaction's (settlement) currency, which
    # need not be the top-up's; rows from before fee_currency existed fall back to it.
    fee_currency = func.coalesce(TopUp.fee_currency, TopUp.currency)
    fee_rows = db.session.execute(
        select(fee_currency, func.sum(TopUp.fee))
        .where(
            TopUp.credited_at.is_not(None),
            TopUp.fee.is_not(None),
            *_in(TopUp.credited_at, period),
        )
        .group_by(fee_currency)
    ).all()
    for currency, fees in fee_rows:
        figures.fees[currency] = int(fees or 0)
    return figures


def _day(column: Any) -> Any:
    """The UTC calendar day of a timestamp, in SQL, on either backend."""
    if db.session.get_bind().dialect.name == "postgresql":
        return func.date(func.timezone("UTC", column))
    return func.date(column)  # SQLite stores UTC text


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def daily_net(period: Period) -> dict[str, list[tuple[date, int]]]:
    """Net revenue per day and currency (gross that day minus refunds that day)."""
    net: dict[str, dict[date, int]] = defaultdict(dict)
    for column, sign, extra in (
        (Purchase.created_at, 1, []),
        (Purchase.refunded_at, -1, [Purchase.status == PURCHASE_REFUNDED]),
    ):
        day = _day(column)
        rows = db.session.execute(
            select(day, Purchase.currency, func.sum(Purchase.amount))
            .where(*extra, *_in(column, period))
            .group_by(day, Purchase.currency)
        ).all()
        for value, currency, amount in rows:
            key = _as_date(value)
            net[currency][key] = net[currency].get(key, 0) + sign * int(amount)
    return {
        currency: [(d, by_day.get(d, 0)) for d in period.days()]
        for currency, by_day in sorted(net.items())
    }


def sales_report(period: Period) -> SalesReport:
    by_article = figures_by_article(period)
    return SalesReport(
        period=period,
        articles=_named(by_article),
        total=_sum(by_article.values()),
        topups=topup_figures(period),
        daily=daily_net(period),
    )


def _named(by_article: dict[int, Figures]) -> list[ArticleSales]:
    if not by_article:
        return []
    rows = db.session.execute(
        select(Article.id, Article.slug, Article.title).where(Article.id.in_(by_article))
    ).all()
    named = [ArticleSales(i, slug, title, by_article[i]) for i, slug, title in rows]
    return sorted(named, key=lambda a: (-sum(a.figures.net.values()), a.title))


def _sum(items: Iterable[Figures]) -> Figures:
    total = Figures()
    for f in items:
        for currency, amount in f.gross.items():
            total.gross[currency] = total.gross.get(currency, 0) + amount
        for currency, amount in f.refunded.items():
            total.refunded[currency] = total.refunded.get(currency, 0) + amount
        total.purchases += f.purchases
        total.refunds += f.refunds
        total.gift_reads += f.gift_reads
    return total


def money_list(amounts: dict[str, int]) -> list[dict[str, Any]]:
    return [{"amount": amounts[c], "currency": c} for c in sorted(amounts)]


def report_data(report: SalesReport) -> dict[str, Any]:
    """The report as plain data, for SalesReportSchema and the templates."""

    def figures(f: Figures) -> dict[str, Any]:
        return {
            "purchases": f.purchases,
            "refunds": f.refunds,
            "gift_reads": f.gift_reads,
            "gross": money_list(f.gross),
            "refunded": money_list(f.refunded),
            "net": money_list(f.net),
        }

    return {
        "period": {"from": report.period.start, "to": report.period.end} if report.period else None,
        "articles": [
            {"slug": a.slug, "title": a.title, **figures(a.figures)} for a in report.articles
        ],
        "total": figures(report.total),
        "topups": {
            "count": report.topups.count,
            "received": money_list(report.topups.received),
            "stripe_fees": money_list(report.topups.fees),
            "stripe_fees_unknown": report.topups.fees_unknown,
        },
        "daily": [
            {"date": d, "net": {"amount": amount, "currency": currency}}
            for currency, days in report.daily.items()
            for d, amount in days
        ],
    }


CSV_COLUMNS = (
    "slug",
    "title",
    "currency",
    "purchases",
    "refunds",
    "gross_amount",
    "refunded_amount",
    "net_amount",
)


def _cell(value: Any) -> Any:
    """Neutralise text a spreadsheet would run as a formula (CSV injection)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _csv_rows(slug: str, title: str, f: Figures) -> list[list[Any]]:
    currencies = sorted(set(f.gross) | set(f.refunded)) or [""]
    rows: list[list[Any]] = []
    for n, currency in enumerate(currencies):
        # Counts belong to the article, not to a currency: written once, on its first line.
        counts = [f.purchases, f.refunds] if n == 0 else [0, 0]
        rows.append(
            [
                slug,
                title,
                currency,
                *counts,
                f.gross.get(currency, 0),
                f.refunded.get(currency, 0),
                f.net.get(currency, 0),
            ]
        )
    return rows


def report_csv(report: SalesReport) -> str:
    """One line per article and currency, then the totals; amounts in minor units."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for a in report.articles:
        for row in _csv_rows(a.slug, a.title, a.figures):
            writer.writerow([_cell(v) for v in row])
    for row in _csv_rows("", "Total", report.total):
        writer.writerow(row)
    return out.getvalue()
