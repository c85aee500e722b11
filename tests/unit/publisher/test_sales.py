"""Sales figures: purchases, refunds, currencies, period boundaries, CSV, the API."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import event, select

from dispatch_pay.payments.gateway import Intent
from dispatch_pay.publisher import sales
from dispatch_pay.wallet.crediting import credit_intent
from models import TopUp, User, db
from tests.support.factories import bearer, make_article, make_token, make_user
from tests.support.stripe_helpers import recorded_topup, topup_metadata
from tests.support.wallet import buy, fund, refund
from tests.support.web import log_in

OCT = {"from": "2026-10-01", "to": "2026-10-31"}


def at(day: int, hour: int = 12, month: int = 10) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


def reader_with(amount: int, currency: str = "usd") -> User:
    reader = make_user()
    fund(reader, amount, currency)
    return reader


@pytest.fixture()
def october(client: FlaskClient) -> dict[str, Any]:
    """Sales around October 2026 in two currencies, with refunds inside and outside it."""
    publisher = make_user(role="publisher")
    usd = make_article(title="Dollar dispatch", price=39)
    eur = make_article(title="Euro dispatch", price=50, currency="eur")
    quiet = make_article(title="Unsold dispatch", price=39)
    buy(reader_with(100), usd, at(1, 0))  # first instant of the period: in
    buy(reader_with(100), usd, at(31, 23))  # last day: in
    kept = buy(reader_with(100), usd, at(15))
    buy(reader_with(100), usd, datetime(2026, 11, 1, tzinfo=UTC))  # first instant after: out
    early = buy(reader_with(100), usd, datetime(2026, 9, 30, 23, 59, tzinfo=UTC))  # before: out
    refund(publisher, early, at(2))  # bought before, refunded in October: a refund in it
    late = buy(reader_with(100, "eur"), eur, at(20))
    refund(publisher, late, datetime(2026, 11, 2, tzinfo=UTC))  # refunded after: not in it
    buy(reader_with(100, "eur"), eur, at(21))
    return {"publisher": publisher, "usd": usd, "eur": eur, "quiet": quiet, "kept": kept}


def report(start: str, end: str) -> dict[str, Any]:
    period = sales.Period(date.fromisoformat(start), date.fromisoformat(end))
    return sales.report_data(sales.sales_report(period))


def by_slug(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a["slug"]: a for a in data["articles"]}


def test_purchases_refunds_and_currencies_within_the_period(october: dict[str, Any]) -> None:
    data = report(OCT["from"], OCT["to"])
    rows = by_slug(data)
    usd, eur = rows[october["usd"].slug], rows[october["eur"].slug]
    assert (usd["purchases"], usd["refunds"]) == (3, 1)
    assert usd["gross"] == [{"amount": 117, "currency": "usd"}]
    assert usd["refunded"] == [{"amount": 39, "currency": "usd"}]
    assert usd["net"] == [{"amount": 78, "currency": "usd"}]
    assert (eur["purchases"], eur["refunds"]) == (2, 0)
    assert eur["gross"] == eur["net"] == [{"amount": 100, "currency": "eur"}]
    assert eur["refunded"] == []
    assert october["quiet"].slug not in rows
    total = data["total"]
    assert (total["purchases"], total["refunds"]) == (5, 1)
    assert total["gross"] == [
        {"amount": 100, "currency": "eur"},
        {"amount": 117, "currency": "usd"},
    ]
    assert total["net"] == [{"amount": 100, "currency": "eur"}, {"amount": 78, "currency": "usd"}]


def test_consecutive_periods_add_up(october: dict[str, Any]) -> None:
    whole = report("2026-09-01", "2026-11-30")["total"]
    parts = [report("2026-09-01", "2026-09-30"), report("2026-10-01", "2026-11-30")]
    assert whole["purchases"] == sum(p["total"]["purchases"] for p in parts)
    assert whole["refunds"] == sum(p["total"]["refunds"] for p in parts)
    for currency in ("usd", "eur"):
        net = sum(
            m["amount"] for p in parts for m in p["total"]["net"] if m["currency"] == currency
        )
        assert {"amount": net, "currency": currency} in whole["net"]


def test_daily_series_covers_every_day_and_nets_refunds(october: dict[str, Any]) -> None:
    daily = report(OCT["from"], OCT["to"])["daily"]
    usd = {d["date"]: d["net"]["amount"] for d in daily if d["net"]["currency"] == "usd"}
    assert len(usd) == 31
    assert usd[date(2026, 10, 1)] == 39
    assert usd[date(2026, 10, 2)] == -39  # the refund of September's purchase
    assert usd[date(2026, 10, 15)] == 39 and usd[date(2026, 10, 31)] == 39
    assert usd[date(2026, 10, 3)] == 0
    eur = {d["date"]: d["net"]["amount"] for d in daily if d["net"]["currency"] == "eur"}
    assert eur[date(2026, 10, 20)] == 50 and sum(eur.values()) == 100


def test_topups_and_stripe_fees_known_or_not(client: FlaskClient) -> None:
    reader = make_user()
    for n, amount in enumerate((500, 200)):
        intent = Intent(
            id=f"pi_sales_{n}",
            status="succeeded",
            amount=amount,
            currency="usd",
            metadata=topup_metadata(reader.id, recorded_topup(reader.id, amount)),
        )
        assert credit_intent(intent)
    topup = db.session.scalar(select(TopUp).where(TopUp.payment_intent_id == "pi_sales_0"))
    assert topup is not None
    topup.fee = 45  # Stripe reported this one's fee
    db.session.commit()
    today = datetime.now(UTC).date().isoformat()
    figures = report(today, today)["topups"]
    assert figures["count"] == 2
    assert figures["received"] == [{"amount": 700, "currency": "usd"}]
    assert figures["stripe_fees"] == [{"amount": 45, "currency": "usd"}]
    assert figures["stripe_fees_unknown"] == 1
    log_in(client, make_user(role="publisher"))
    page = client.get("/publisher/sales").get_data(as_text=True).split('id="topups"')[1]
    assert "$7.00" in page and "$0.45" in page and "unknown for 1 top-up" in page


def test_the_sales_queries_do_not_grow_with_the_number_of_articles(client: FlaskClient) -> None:
    def statements_for_report() -> int:
        count = 0

        def on_execute(*_: Any) -> None:
            nonlocal count
            count += 1

        bind = db.session.get_bind()
        event.listen(bind, "before_cursor_execute", on_execute)
        try:
            today = datetime.now(UTC).date()
            sales.sales_report(sales.Period(today - timedelta(days=29), today))
        finally:
            event.remove(bind, "before_cursor_execute", on_execute)
        return count

    def sell_one() -> None:
        article = make_article(price=39)
        buy(reader_with(100), article)

    sell_one()
    few = statements_for_report()
    for _ in range(6):
        sell_one()
    assert statements_for_report() == few


# --- the API ------------------------------------------------------------------------


def test_api_returns_the_report_as_json(client: FlaskClient, october: dict[str, Any]) -> None:
    token = make_token(october["publisher"])
    response = client.get("/api/v1/publisher/sales", query_string=OCT, headers=bearer(token))
    assert response.status_code == 200
    body = response.json
    assert body["period"] == {"from": "2026-10-01", "to": "2026-10-31"}
    assert set(body) == {"period", "articles", "total", "topups", "daily"}
    article = body["articles"][0]
    assert set(article) == {
        "slug",
        "title",
        "purchases",
        "refunds",
        "gift_reads",
        "gross",
        "refunded",
        "net",
    }
    assert body["total"]["purchases"] == 5
    assert {"amount": 78, "currency": "usd"} in body["total"]["net"]
    assert body["daily"][0] == {"date": "2026-10-01", "net": {"amount": 0, "currency": "eur"}}
    assert len(body["daily"]) == 62  # every day, once per currency


def test_api_defaults_to_the_last_30_days(client: FlaskClient) -> None:
    token = make_token(make_user(role="publisher"))
    body = client.get("/api/v1/publisher/sales", headers=bearer(token)).json
    today = datetime.now(UTC).date()
    assert body["period"] == {
        "from": (today - timedelta(days=29)).isoformat(),
        "to": today.isoformat(),
    }


def test_api_csv(client: FlaskClient, october: dict[str, Any]) -> None:
    token = make_token(october["publisher"])
    response = client.get(
        "/api/v1/publisher/sales", query_string={**OCT, "format": "csv"}, headers=bearer(token)
    )
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "sales-2026-10-01-2026-10-31.csv" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    usd = next(r for r in rows if r["slug"] == october["usd"].slug)
    assert (usd["currency"], usd["purchases"], usd["refunds"]) == ("usd", "3", "1")
    assert (usd["gross_amount"], usd["refunded_amount"], usd["net_amount"]) == ("117", "39", "78")
    totals = [r for r in rows if r["title"] == "Total"]
    assert [(r["currency"], r["net_amount"]) for r in totals] == [("eur", "100"), ("usd", "78")]


def test_csv_neutralises_formulas_in_titles(client: FlaskClient) -> None:
    article = make_article(title="=HYPERLINK(1)", price=39)
    buy(reader_with(100), article)
    today = datetime.now(UTC).date()
    text = sales.report_csv(sales.sales_report(sales.Period(today, today)))
    assert "'=HYPERLINK(1)" in text


@pytest.mark.parametrize(
    "query",
    [
        {"from": "2026-10-31", "to": "2026-10-01"},
        {"from": "yesterday"},
        {"format": "xml"},
        {"from": "2001-01-01", "to": "2026-01-01"},
        {"from": "9999-12-31"},
        {"to": "9999-12-31"},
        {"from": "0001-01-01"},
    ],
)
def test_api_rejects_bad_periods(client: FlaskClient, query: dict[str, str]) -> None:
    token = make_token(make_user(role="publisher"))
    response = client.get("/api/v1/publisher/sales", query_string=query, headers=bearer(token))
    assert response.status_code == 422
    assert response.json["error"]["code"] == "invalid_fields"
    assert response.json["error"]["fields"]


def test_api_needs_a_publisher(client: FlaskClient) -> None:
    assert client.get("/api/v1/publisher/sales").status_code == 401
    assert client.get("/api/v1/publisher/sales", headers=bearer("dp_nope")).status_code == 401
    reader_token = make_token(make_user())
    response = client.get("/api/v1/publisher/sales", headers=bearer(reader_token))
    assert response.status_code == 403
    assert response.json["error"]["code"] == "forbidden"


# --- the dashboard's sales page -----------------------------------------------------


def test_sales_page_shows_the_period_chart_and_csv(
    client: FlaskClient, october: dict[str, Any]
) -> None:
    log_in(client, october["publisher"])
    response = client.get("/publisher/sales", query_string=OCT)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    row = page.split(f'data-slug="{october["usd"].slug}"')[1].split("</tr>")[0]
    assert "$1.17" in row and "$0.78" in row
    assert page.count('class="revenue-chart"') == 2  # one chart per currency
    assert 'data-date="2026-10-02" data-amount="-39"' in page
    csv_response = client.get("/publisher/sales", query_string={**OCT, "format": "csv"})
    assert csv_response.mimetype == "text/csv"
    assert october["usd"].slug in csv_response.get_data(as_text=True)


def test_sales_page_explains_a_bad_period(client: FlaskClient) -> None:
    log_in(client, make_user(role="publisher"))
    response = client.get(
        "/publisher/sales", query_string={"from": "2026-10-31", "to": "2026-10-01"}
    )
    assert response.status_code == 422
    assert "Must not be after" in response.get_data(as_text=True)
