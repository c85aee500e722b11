"""What the ledger gives back: a new wallet, the entries as posted, the wallet page's list.

Written for survivors of `make mutate` on wallet/ledger.py (docs/mutants.md).
"""

from __future__ import annotations

from flask.testing import FlaskClient

from dispatch_pay.wallet.ledger import entries, locked_wallet, post_entry, purchased_articles
from models import ENTRY_ADJUSTMENT, ENTRY_PURCHASE, LedgerEntry, Purchase, Wallet, db
from tests.support.factories import make_article, make_user


def stored(entry_id: int) -> LedgerEntry:
    db.session.expire_all()
    found = db.session.get(LedgerEntry, entry_id)
    assert found is not None
    return found


def test_a_new_wallet_starts_empty_and_undisputed(client: FlaskClient) -> None:
    user = make_user()
    wallet = locked_wallet(user.id, "usd")
    db.session.commit()
    db.session.expire_all()
    found = db.session.get(Wallet, wallet.id)
    assert found is not None
    assert (found.user_id, found.currency, found.balance, found.open_disputes) == (
        user.id,
        "usd",
        0,
        0,
    )


def test_an_entry_is_stored_with_everything_it_was_posted_with(client: FlaskClient) -> None:
    user = make_user()
    wallet = locked_wallet(user.id, "usd")
    entry = post_entry(
        wallet,
        ENTRY_ADJUSTMENT,
        -120,
        f"adjust:{user.id}",
        payment_intent_id="pi_behind_it",
        note="goodwill correction",
    )
    assert entry is not None
    db.session.commit()
    found = stored(entry.id)
    assert (
        found.wallet_id,
        found.kind,
        found.amount,
        found.reference,
        found.payment_intent_id,
        found.purchase_id,
        found.note,
    ) == (
        wallet.id,
        ENTRY_ADJUSTMENT,
        -120,
        f"adjust:{user.id}",
        "pi_behind_it",
        None,
        "goodwill correction",
    )
    assert found.created_at is not None
    assert db.session.get(Wallet, wallet.id).balance == -120  # type: ignore[union-attr]


def test_the_wallet_page_lists_this_wallets_entries_newest_first_up_to_the_limit(
    client: FlaskClient,
) -> None:
    reader, other = make_user(), make_user()
    wallet = locked_wallet(reader.id, "usd")
    posted = [post_entry(wallet, ENTRY_ADJUSTMENT, n, f"list:{reader.id}:{n}") for n in (1, 2, 3)]
    elsewhere = locked_wallet(other.id, "usd")
    post_entry(elsewhere, ENTRY_ADJUSTMENT, 7, f"list:{other.id}")
    db.session.commit()
    newest_first = [e.id for e in reversed(posted) if e is not None]
    assert [e.id for e in entries(wallet)] == newest_first
    assert [e.id for e in entries(wallet, limit=2)] == newest_first[:2]


def test_the_wallet_page_names_the_article_of_each_purchase_entry(client: FlaskClient) -> None:
    reader = make_user()
    bought, other = make_article(), make_article()
    wallet = locked_wallet(reader.id, "usd")
    purchases = {}
    for article in (bought, other):
        purchase = Purchase(
            user_id=reader.id,
            article_id=article.id,
            wallet_id=wallet.id,
            amount=article.price_amount,
            currency="usd",
        )
        db.session.add(purchase)
        db.session.flush()
        purchases[article.id] = purchase.id
    post_entry(wallet, ENTRY_ADJUSTMENT, 500, f"names:{reader.id}")
    for purchase_id in purchases.values():
        post_entry(wallet, ENTRY_PURCHASE, -39, f"names:{purchase_id}", purchase_id=purchase_id)
    db.session.commit()
    found = entries(wallet)
    assert {pid: a.id for pid, a in purchased_articles(found).items()} == {
        purchase_id: article_id for article_id, purchase_id in purchases.items()
    }
    newest = found[0]  # the purchase of `other`: only the purchases asked about are named
    assert {pid: a.id for pid, a in purchased_articles([newest]).items()} == {
        purchases[other.id]: other.id
    }
    adjustments_only = [e for e in found if e.purchase_id is None]
    assert adjustments_only and purchased_articles(adjustments_only) == {}
