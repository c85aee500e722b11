"""Attacks on the credit made before Flask (webhooks/quick_credit.py).

Each test sends the same kind of request twice: once with a query string (the view
answers it: the quick path takes only the bare URL) and once to the bare URL (the quick
path may answer it on PostgreSQL). The promise is that both get the same answer and the
same effect. On SQLite the view answers both, so these tests hold there; on PostgreSQL
they fail where the quick path answers something the view would not.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from models import User, WebhookEvent, db
from tests.support.stripe_helpers import recorded_topup, signature_header, signed
from tests.unit.webhooks import test_quick_credit as plain_case
from tests.unit.webhooks.test_quick_credit import VIEW, WEBHOOK, balance, success

# The quick credit's own tests' fixture: a reader after one credit (the quick path has
# learned the view's headers). `postgres` is conftest's.
reader = plain_case.reader

PLACEHOLDER = '"@@RAW@@"'


def _raw_event(reader: User, mutate: Callable[[dict[str, Any]], str | None]) -> tuple[bytes, str]:
    """A signed-able body for a fresh plain top-up of `reader`; `mutate` edits the event and
    may return raw JSON text that replaces the string PLACEHOLDER (for values json.dumps
    cannot write). Returns (body, the event id)."""
    evt = success(reader.id, recorded_topup(reader.id, 500))
    raw = mutate(evt)
    text = json.dumps(evt)
    if raw is not None:
        assert PLACEHOLDER in text
        text = text.replace(PLACEHOLDER, raw, 1)
    return text.encode(), str(evt["id"])


def _post_signed(
    client: FlaskClient, url: str, payload: bytes, **headers: str
) -> TestResponse | BaseException:
    try:
        return client.post(
            url,
            data=payload,
            headers={
                "Stripe-Signature": signature_header(payload),
                "Content-Type": "application/json",
                **headers,
            },
        )
    except Exception as exc:  # an exception out of the WSGI app: the server's bare 500
        return exc


def _stored(event_id: str) -> WebhookEvent | None:
    db.session.expire_all()
    return db.session.scalar(select(WebhookEvent).where(WebhookEvent.stripe_event_id == event_id))


def _effect(reader: User, before: int, event_id: str) -> tuple[int, str | None]:
    """(money credited, stored outcome) of one delivery."""
    stored = _stored(event_id)
    return balance(reader) - before, (stored.outcome if stored is not None else None)


def _answer(response: TestResponse | BaseException) -> tuple[Any, ...]:
    if isinstance(response, BaseException):
        return ("exception escaped the WSGI app", type(response).__name__, str(response)[:80])
    return (response.status_code, response.data)


def _view_and_bare(
    client: FlaskClient,
    reader: User,
    mutate: Callable[[dict[str, Any]], str | None],
    **headers: str,
) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """(answer, effect) of the view and of the bare URL for two like events."""
    results = []
    for url in (VIEW, WEBHOOK):
        payload, event_id = _raw_event(reader, mutate)
        before = balance(reader)
        response = _post_signed(client, url, payload, **headers)
        db.session.rollback()  # a crashed request may leave the test's session dirty
        results.append((_answer(response), _effect(reader, before, event_id)))
    return results[0], results[1]


# --- 1. A form content type: the view reads no body (Flask parsed it as a form) ---------


@pytest.mark.parametrize(
    "content_type",
    ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x"],
)
def test_a_signed_event_sent_as_a_form_is_not_credited_where_the_view_refuses_it(
    stripe_client: FlaskClient, reader: User, content_type: str
) -> None:
    """The view's request parses a form body before the view runs (the NUL check of
    `reject_unsafe_request_text` reads `request.form`), so `get_data` is empty and the view
    answers 400 invalid_signature and credits nothing. The quick path ignores the
    Content-Type and credits the top-up with a 200."""
    view, bare = _view_and_bare(
        stripe_client, reader, lambda evt: None, **{"Content-Type": content_type}
    )
    assert view[0][0] == 400 and view[1] == (0, None)  # what the view does
    assert bare == view


# --- 2. A number PostgreSQL's json takes but the view cannot store -----------------------


def test_a_number_beyond_float_range_in_an_unread_field_gets_the_views_answer(
    stripe_client: FlaskClient, reader: User, postgres: bool
) -> None:
    """`1e400` is Python's inf: the view stores the parsed event, json.dumps writes
    `Infinity`, PostgreSQL's json refuses it and the view answers 500 with nothing stored
    (Stripe retries). The quick path stores the raw text (which PostgreSQL takes) and
    answers 200 credited: an answer, a stored payload and a credit the view never makes."""

    def mutate(evt: dict[str, Any]) -> str:
        evt["data"]["object"]["x_extra"] = "@@RAW@@"
        return "1e400"

    view, bare = _view_and_bare(stripe_client, reader, mutate)
    if postgres:
        assert view[0][0] == 500 and view[1] == (0, None)  # what the view does on PostgreSQL
    assert bare == view


# --- 3. Signed events the parser cannot read: exceptions out of the middleware ------------


def _amount_overflow(evt: dict[str, Any]) -> str:
    evt["data"]["object"]["amount"] = "@@RAW@@"
    return "1e400"


def _refund_overflow(evt: dict[str, Any]) -> str:
    obj = evt["data"]["object"]
    obj["latest_charge"] = {"id": "ch_overflow", "amount_refunded": "@@RAW@@"}
    return "1e400"


def _deep_nesting(evt: dict[str, Any]) -> str:
    evt["data"]["object"]["x_extra"] = "@@RAW@@"
    return "[" * 3000 + "]" * 3000  # 6 kB, far below MAX_BODY


@pytest.mark.parametrize(
    "mutate",
    [_amount_overflow, _refund_overflow, _deep_nesting],
    ids=["amount-1e400", "refunded-1e400", "nested-3000-deep"],
)
def test_an_unreadable_signed_event_gets_the_views_json_500_not_an_exception(
    stripe_client: FlaskClient,
    reader: User,
    mutate: Callable[[dict[str, Any]], str],
) -> None:
    """`_plain_event` catches ValueError, TypeError, KeyError, AttributeError, but
    int(inf) raises OverflowError and json.loads of deep nesting RecursionError: they
    escape QuickCredits.__call__ (the server's bare 500, no JSON error body, no
    X-Request-ID, no request line), where the view answers its JSON 500 internal_error."""
    view, bare = _view_and_bare(stripe_client, reader, mutate)
    assert view[0][0] == 500 and b"internal_error" in view[0][1]
    assert bare == view


# --- 4. Unsigned: a Content-Length that isdigit() but int() refuses ------------------------


@pytest.mark.parametrize("length", ["\u00b2", "9" * 5000], ids=["superscript-two", "5000-digits"])
def test_an_odd_content_length_gets_the_views_400_not_an_exception(
    stripe_client: FlaskClient, reader: User, length: str
) -> None:
    """No secret needed: `_payload` checks `length.isdigit()` and then calls int(length).
    "²" (latin-1 0xB2, as a WSGI server decodes header bytes) is a digit to isdigit() and
    not to int(); 5000 ASCII digits exceed Python's int-from-string limit. Both raise
    ValueError out of the middleware (a 500 with a traceback) where the view answers 400
    invalid_signature (werkzeug reads such a Content-Length as 0)."""
    answers = []
    for url in (VIEW, WEBHOOK):
        payload, _ = signed(success(reader.id, recorded_topup(reader.id, 500)))
        try:
            response: TestResponse | BaseException = stripe_client.post(
                url,
                data=payload,
                headers={"Stripe-Signature": "t=1,v1=00"},
                environ_overrides={"CONTENT_LENGTH": length},
            )
        except Exception as exc:
            response = exc
        db.session.rollback()
        answers.append(_answer(response))
    view, bare = answers
    assert view[0] == 400 and b"invalid_signature" in view[1]
    assert bare == view
