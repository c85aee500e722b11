"""The database itself refuses to edit or delete ledger entries."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError

from dispatch_pay.wallet.ledger import find_wallet, locked_wallet, post_entry
from models import ENTRY_ADJUSTMENT, db
from tests.support.factories import make_user


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_entries SET amount = amount + 100",
        "DELETE FROM ledger_entries",
    ],
)
def test_ledger_entries_cannot_change(client: FlaskClient, statement: str) -> None:
    user = make_user()
    wallet = locked_wallet(user.id, "usd")
    assert post_entry(wallet, ENTRY_ADJUSTMENT, 250, f"test:{user.id}") is not None
    db.session.commit()
    with pytest.raises(DatabaseError, match="immutable"), db.session.begin_nested():
        db.session.execute(text(statement))
    amounts: Any = db.session.scalars(
        text("SELECT amount FROM ledger_entries WHERE wallet_id = :w"), {"w": wallet.id}
    ).all()
    assert amounts == [250]


def test_the_same_effect_is_recorded_once(client: FlaskClient) -> None:
    user = make_user()
    wallet = locked_wallet(user.id, "usd")
    first = post_entry(wallet, ENTRY_ADJUSTMENT, 100, "same-reference")
    second = post_entry(wallet, ENTRY_ADJUSTMENT, 100, "same-reference")
    assert first is not None
    assert second is None
    assert wallet.balance == 100


def test_each_reader_finds_their_own_wallet_in_each_currency(client: FlaskClient) -> None:
    """mutmut: `find_wallet` without its reader (or currency) condition survived."""
    first, second = make_user(), make_user()
    theirs = {
        (user.id, currency): locked_wallet(user.id, currency).id
        for user in (first, second)
        for currency in ("usd", "eur")
    }
    assert len(set(theirs.values())) == 4
    for (user_id, currency), wallet_id in theirs.items():
        found = find_wallet(user_id, currency)
        assert found is not None and found.id == wallet_id
