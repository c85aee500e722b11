"""Stripe's plain `payment_intent.succeeded` for a wallet top-up, credited before Flask on
PostgreSQL.

It is most of what `POST /webhooks/stripe` receives. When the event is signed and plain,
one statement (its own transaction, in autocommit: one round trip) stores it and credits
it, with the guarantees of `services.ingest` and `crediting.credit_ours`:

- The event is verified, parsed and read by the same code as the view's (the configured
  `WebhookEvents`), and is of this deployment's mode.
- Plain means, in Python: a succeeded PaymentIntent of ours (`dispatch_purpose` a top-up,
  a `dispatch_ref`, a canonical `dispatch_reader`), bought nothing with it (no
  `dispatch_article`), its latest charge an id (not expanded: no fee, no refund, no
  dispute, no card to record), an amount within the top-up limits; and in SQL: its
  top-up (by reference) is that reader's, for that amount and currency, not credited,
  not for an article, with no failure, card or refund recorded, and linked to no other
  PaymentIntent; the reader has a wallet in that currency and an address mail can go
  to (a closed account's erased address is not one); the event was not stored before.
- It never waits, so it never acts on a snapshot older than its locks. It locks the
  wallet and the top-up (`FOR UPDATE OF ... SKIP LOCKED`): a row locked by a concurrent
  credit, refund or dispute sends the event to the view, which locks first and reads
  after; PostgreSQL checks the locked rows' conditions again on their newest version,
  so a top-up credited meanwhile is seen. It only tries the event id's advisory lock,
  which the view holds from storing the event until it commits (`services.ingest`): a
  delivery of the same event in progress in the view sends this one there too, where
  it waits and finds a duplicate (waiting here on the uncommitted id, holding the rows,
  could deadlock with that view, or act on a stale snapshot once it went on).
- It inserts the event (its unique id decides: a concurrent delivery stored first means
  nothing more is written), marks the top-up succeeded and credited, inserts the ledger
  entry (its unique (kind, reference) decides), moves the balance by that entry, and
  queues the receipt, rendered here from the same templates (its number, which needs the
  top-up's id, is filled in by the statement). Should the entry already exist, the
  statement fails on purpose (a division by zero) and so writes nothing.
- The answer is the view's: 200 `{"received": true, "outcome": "credited"}` with the
  headers the view sent with its first such answer.

Everything else (another type, a bad signature, a refund or dispute, a purchase on
credit, a duplicate, a locked row, any database error) writes nothing here and Flask
answers it. SQLite runs the view only.
"""

from __future__ import annotations

import io
import json
import logging
import re
import secrets
from datetime import datetime
from typing import TYPE_CHECKING, Any

from flask import Flask
from markupsafe import escape
from sqlalchemy import text

from dispatch_pay.before_flask import Answer, BeforeFlask, statement_runner
from dispatch_pay.mail.outbox import absolute_url_of, mail_bodies, new_message_id
from dispatch_pay.payments import services as payments
from dispatch_pay.payments.gateway import (
    WEBHOOKS_KEY,
    Event,
    Intent,
    WebhookEvents,
    live_keys,
)
from dispatch_pay.payments.limits import topup_amount_allowed
from dispatch_pay.payments.receipts import (
    RECEIPT_ENDPOINT,
    receipt_subject,
    receipt_values,
    seller,
)
from models import DELETED_EMAIL_DOMAIN, ENTRY_TOPUP, MAIL_QUEUED, TopUpStatus, db, utcnow

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication, WSGIEnvironment

log = logging.getLogger("dispatch_pay.webhooks.services")  # the view's event log line

PATH = "/webhooks/stripe"
MADE_KEY = "dispatch_pay.quick_credit_made"  # set by the view when it answered "credited"
EVENT_TYPE = "payment_intent.succeeded"
OUTCOME = "credited"
MAX_BODY = 64 * 1024  # Stripe's events are a few kB; larger ones go to the view
MAX_LENGTH_DIGITS = 6
# Lengths the view's rows take: the event id, and the PaymentIntent id (the ledger
# entry's reference), the charge id.
EVENT_ID_LENGTH = 255
REFERENCE_LENGTH = 120
CHARGE_ID_LENGTH = 255
# Receipt numbers the statement writes as the view does (R- and eight digits).
NUMBER_LIMIT = 100_000_000
# Addresses the outbox takes as they are: anything else goes to the view's check.
PLAIN_ADDRESS = r"^[a-z0-9._%+-]+@[a-z0-9-]+(\.[a-z0-9-]+)+$"
CANONICAL_ID = re.compile(r"[1-9][0-9]{0,17}")
MINUTE = "%Y-%m-%d %H:%M"  # the receipt's date, as its templates show it

_CREDIT = text(
    """
    WITH k AS MATERIALIZED (
        SELECT pg_try_advisory_xact_lock(hashtextextended(:event_id, 0)) AS held
    ), c AS MATERIALIZED (
        SELECT t.id AS topup_id, t.user_id, w.id AS wallet_id, u.email,
               'R-' || lpad(t.id::text, 8, '0') AS number
        FROM topups t
        JOIN users u ON u.id = t.user_id
        JOIN wallets w ON w.user_id = t.user_id AND w.currency = t.currency
        WHERE t.reference = :reference AND t.user_id = :reader_id
          AND t.currency = :currency AND t.amount = :amount
          AND (t.payment_intent_id IS NULL OR t.payment_intent_id = :payment_intent_id)
          AND t.credited_at IS NULL AND t.buy_article_id IS NULL
          AND t.failure_code IS NULL AND t.amount_refunded = 0
          AND t.card_brand IS NULL AND t.card_last4 IS NULL
          AND t.id < :number_limit
          AND u.email ~ :plain_address AND u.email NOT LIKE :deleted_address
          AND (SELECT held FROM k)
          AND NOT EXISTS (SELECT 1 FROM webhook_events e
                          WHERE e.stripe_event_id = :event_id)
        FOR UPDATE OF t, w SKIP LOCKED
    ), ev AS (
        INSERT INTO webhook_events (stripe_event_id, type, livemode, outcome, payload,
                                    received_at)
        SELECT :event_id, :event_type, :livemode, :outcome, CAST(:payload AS JSON), :now
        FROM c
        ON CONFLICT DO NOTHING
        RETURNING id
    ), tu AS (
        UPDATE topups SET status = :succeeded, payment_intent_id = :payment_intent_id,
                          charge_id = :charge_id, credited_at = :now, failure_code = NULL
        WHERE id = (SELECT topup_id FROM c) AND EXISTS (SELECT 1 FROM ev)
        RETURNING id
    ), l AS (
        INSERT INTO ledger_entries (wallet_id, kind, amount, reference, payment_intent_id,
                                    created_at)
        SELECT c.wallet_id, :entry_kind, :amount, :payment_intent_id, :payment_intent_id, :now
        FROM c, ev
        ON CONFLICT DO NOTHING
        RETURNING wallet_id, amount
    ), b AS (
        UPDATE wallets SET balance = balance + l.amount
        FROM l WHERE wallets.id = l.wallet_id
        RETURNING wallets.balance
    ), m AS (
        INSERT INTO mail_outbox (kind, to_address, subject, text_body, html_body, message_id,
                                 status, attempts, created_at, next_attempt_at)
        SELECT 'receipt', c.email, replace(:subject, :mark, c.number),
               replace(:text_body, :mark, c.number), replace(:html_body, :mark, c.number),
               :message_id, :queued, 0, :now, :now
        FROM c, l
        RETURNING id
    )
    SELECT c.user_id, (SELECT count(*) FROM tu), (SELECT count(*) FROM b),
           (SELECT count(*) FROM m),
           1 / (SELECT count(*) FROM l)  -- no entry made: fail, and so write nothing
    FROM c, ev
    """
)


def mark_credited(environ: dict[str, Any]) -> None:
    """Called by the view when it answered an event with "credited"."""
    environ[MADE_KEY] = True


class QuickCredits(BeforeFlask):
    """WSGI middleware: a plain top-up's success event, stored and credited before Flask."""

    cache = "quick-credit"

    def __init__(self, app: WSGIApplication, flask_app: Flask, testing: bool) -> None:
        super().__init__(app, MADE_KEY)
        self.flask_app = flask_app
        self.statement = statement_runner(_CREDIT, testing, writes=True)
        self.testing = testing
        self.receipts = ReceiptMail(flask_app)
        self.body = (
            flask_app.json.dumps({"received": True, "outcome": OUTCOME}, separators=(",", ":"))
            + "\n"
        ).encode()

    def _payload(self, environ: WSGIEnvironment) -> bytes | None:
        """The body of a webhook request; it is left as it came for Flask to read."""
        if environ.get("REQUEST_METHOD") != "POST" or environ.get("PATH_INFO") != PATH:
            return None
        if environ.get("QUERY_STRING") or environ.get("HTTP_TRANSFER_ENCODING"):
            return None
        if not environ.get("HTTP_STRIPE_SIGNATURE"):
            return None
        # What Stripe sends. A form's content type would have Flask read the body as a
        # form (the view then sees none): such requests are the view's.
        mimetype = str(environ.get("CONTENT_TYPE") or "").split(";", 1)[0].strip().lower()
        if mimetype != "application/json":
            return None
        length = str(environ.get("CONTENT_LENGTH") or "")
        if not (length.isascii() and length.isdigit() and len(length) <= MAX_LENGTH_DIGITS):
            return None
        if not 0 < int(length) <= MAX_BODY:
            return None
        body: bytes = environ["wsgi.input"].read(int(length))
        environ["wsgi.input"] = io.BytesIO(body)
        return body

    def answer(self, environ: WSGIEnvironment) -> Answer | None:
        payload = self._payload(environ)
        if payload is None:
            return None
        if self.testing and (db.session.new or db.session.dirty or db.session.deleted):
            return None  # a test's unflushed objects: the view's request flushes them
        plain = self._plain_event(payload, environ["HTTP_STRIPE_SIGNATURE"])
        if plain is None:
            return None
        event, intent, ours = plain
        try:
            user_id = self._credit(environ, event, intent, ours)
        except Exception:  # any database trouble: Flask answers (and reports) it
            return None
        if user_id is None:
            return None
        log.info("stripe event %s %s: %s", event.id, event.type, OUTCOME)
        return self.body, None

    def _plain_event(
        self, payload: bytes, signature: str
    ) -> tuple[Event, Intent, tuple[str, int]] | None:
        """The event, its PaymentIntent and (reference, reader id), if it is the plain case."""
        events: WebhookEvents = self.flask_app.extensions[WEBHOOKS_KEY]
        if not events.configured():
            return None
        try:
            event = events.verify(payload, signature)
            if event.type != EVENT_TYPE or len(event.id) > EVENT_ID_LENGTH:
                return None
            if event.livemode != live_keys(self.flask_app.config):
                return None
            intent = events.subject(event)
        except Exception:  # unreadable, too deep, out of range: whatever it is, the view's
            return None
        if not isinstance(intent, Intent) or not self._plain_intent(intent):
            return None
        meta = intent.metadata
        reader = meta.get(payments.META_READER, "")
        if not CANONICAL_ID.fullmatch(reader):
            return None
        return event, intent, (meta[payments.META_REF], int(reader))

    @staticmethod
    def _plain_intent(intent: Intent) -> bool:
        meta = intent.metadata
        reference = meta.get(payments.META_REF, "")
        return (
            intent.status == TopUpStatus.SUCCEEDED
            and meta.get(payments.META_PURPOSE) == payments.PURPOSE_TOPUP
            and 0 < len(reference) <= payments.REFERENCE_LENGTH
            and not meta.get(payments.META_ARTICLE)
            and 0 < len(intent.id) <= REFERENCE_LENGTH
            and isinstance(intent.charge_id, str)
            and 0 < len(intent.charge_id) <= CHARGE_ID_LENGTH
            and intent.fee is None
            and intent.amount_refunded == 0
            and not intent.disputed
            and intent.card_brand is None
            and intent.card_last4 is None
            and topup_amount_allowed(intent.amount, intent.currency)
        )

    def _credit(
        self,
        environ: WSGIEnvironment,
        event: Event,
        intent: Intent,
        ours: tuple[str, int],
    ) -> int | None:
        """The statement; the reader credited, or None when nothing was written."""
        now = utcnow()
        subject, text_body, html_body = self.receipts.mail(environ, intent, now)
        reference, reader_id = ours
        row = self.statement(
            {
                "reference": reference,
                "reader_id": reader_id,
                "currency": intent.currency,
                "amount": intent.amount,
                "payment_intent_id": intent.id,
                "charge_id": intent.charge_id,
                "number_limit": NUMBER_LIMIT,
                "plain_address": PLAIN_ADDRESS,
                "deleted_address": "%" + DELETED_EMAIL_DOMAIN,
                "event_id": event.id,
                "event_type": event.type,
                "livemode": event.livemode,
                "outcome": OUTCOME,
                # Stored as the view stores it (the JSON column's serialiser): what
                # PostgreSQL refuses from the view (an `Infinity`, say) it refuses here too.
                "payload": json.dumps(event.payload),
                "now": now,
                "succeeded": str(TopUpStatus.SUCCEEDED),
                "entry_kind": str(ENTRY_TOPUP),
                "subject": subject,
                "text_body": text_body,
                "html_body": html_body,
                "mark": self.receipts.number_mark,
                "message_id": new_message_id(self.flask_app.config),
                "queued": MAIL_QUEUED,
            }
        )
        if row is None:
            return None
        user_id, linked, moved, mailed, _entry = row
        assert (linked, moved, mailed) == (1, 1, 1)
        return int(user_id)


class ReceiptMail:
    """The receipt mail of a plain credit, from the view's templates.

    Rendered once per amount, currency, minute (the receipt shows the time to the
    minute) and seller, with the PaymentIntent and charge ids and the link left as
    markers that are put in per credit, escaped in the HTML as Jinja escapes them; the
    number stays a marker for the statement (`number_mark`). The markers are random per
    process, so no value can carry one.
    """

    LIMIT = 256  # renders kept (a few amounts a minute, in practice)

    def __init__(self, app: Flask) -> None:
        self.app = app
        token = secrets.token_hex(8)
        self.number_mark = f"NUMBER{token}"
        self.charge_mark = f"CHARGE{token}"
        self.link_mark = f"LINK{token}"
        self.intent_mark = f"INTENT{token}"
        self.rendered: dict[tuple[Any, ...], tuple[str, str, str]] = {}

    def mail(self, environ: WSGIEnvironment, intent: Intent, now: datetime) -> tuple[str, str, str]:
        """The subject and the text and HTML bodies, the number left as `number_mark`."""
        assert intent.charge_id  # the plain case has one (see QuickCredits._plain_intent)
        config = self.app.config
        key = (
            intent.amount,
            intent.currency,
            now.strftime(MINUTE),
            config["SITE_NAME"],
            *seller(config).values(),
        )
        found = self.rendered.get(key)
        if found is None:
            if len(self.rendered) >= self.LIMIT:
                self.rendered.clear()
            found = self.rendered[key] = self._render(intent, now)
        subject, text_body, html_body = found
        link = absolute_url_of(self.app, RECEIPT_ENDPOINT, {"topup_id": intent.id}, environ)
        values = {
            self.charge_mark: intent.charge_id,
            self.link_mark: link,
            self.intent_mark: intent.id,
        }
        for mark, value in values.items():
            text_body = text_body.replace(mark, value)
            html_body = html_body.replace(mark, str(escape(value)))
        return subject, text_body, html_body

    def _render(self, intent: Intent, now: datetime) -> tuple[str, str, str]:
        receipt = receipt_values(
            number=self.number_mark,
            payment_intent_id=self.intent_mark,
            credited_at=now,
            amount=intent.amount,
            currency=intent.currency,
            card_brand=None,
            card_last4=None,
            charge_id=self.charge_mark,
            config=self.app.config,
        )
        subject = receipt_subject(receipt)
        context = {"receipt": receipt, "url": self.link_mark}
        text_body, html_body = mail_bodies(self.app, "receipt", subject, context)
        return subject, text_body, html_body


def register_quick_credits(app: Flask) -> None:
    """On PostgreSQL only (the statement is PostgreSQL's); SQLite runs the view."""
    url = str(app.config.get("DATABASE_URL") or "")
    if not url.startswith("postgresql"):
        return
    app.wsgi_app = QuickCredits(app.wsgi_app, app, testing=app.testing)  # type: ignore[method-assign]
