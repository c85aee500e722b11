"""Command-line entry points: `flask --app app <command>`."""

from __future__ import annotations

import getpass
import logging
from datetime import timedelta
from pathlib import Path

import click
from alembic import command
from alembic.config import Config as AlembicConfig
from flask import Flask, current_app
from sqlalchemy.exc import OperationalError

from dispatch_pay.accounts.services import ensure_publisher, issue_token
from dispatch_pay.errors import DomainError
from dispatch_pay.payments import fees
from dispatch_pay.payments.fees import FEE_BATCH
from dispatch_pay.payments.gateway import (
    PaymentGateway,
    PaymentProviderUnavailable,
    require_gateway,
)
from models import db

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


class CouldNotRun(click.ClickException):
    """A cron job that could not do its work (exit 2), told apart from audit's mismatch (1)."""

    exit_code = 2


def _database_down(exc: OperationalError) -> str:
    """One line for cron mail; the driver's message may carry statement parameters."""
    reason = type(exc.orig).__name__ if exc.orig else type(exc).__name__
    return f"the database is unavailable ({reason})"


def alembic_config(url: str | None = None) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option(
        "sqlalchemy.url", (url or current_app.config["DATABASE_URL"]).replace("%", "%%")
    )
    return config


@click.group("db", help="Database schema migrations (Alembic).")
def db_group() -> None:
    pass


@db_group.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Create or migrate the schema."""
    _ensure_sqlite_directory()
    command.upgrade(alembic_config(), revision)


@db_group.command("downgrade")
@click.argument("revision", default="-1")
def db_downgrade(revision: str) -> None:
    command.downgrade(alembic_config(), revision)


@db_group.command("current")
def db_current() -> None:
    command.current(alembic_config())


@db_group.command("revision")
@click.option("-m", "--message", required=True)
@click.option("--autogenerate", is_flag=True)
def db_revision(message: str, autogenerate: bool) -> None:
    command.revision(alembic_config(), message=message, autogenerate=autogenerate)


def _ensure_sqlite_directory() -> None:
    url = current_app.config["DATABASE_URL"]
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)


@click.command("create-publisher")
@click.argument("email")
@click.option("--password", default=None, help="Set the account's password.")
@click.option("--token-name", default="Pipeline", show_default=True)
def create_publisher(email: str, password: str | None, token_name: str) -> None:
    """Create (or promote) a publisher; print a new API token as the last line."""
    _check_credentials(email, password)
    user = ensure_publisher(email, password)
    issued = issue_token(user, token_name)
    db.session.commit()
    click.echo(f"Publisher {user.email} (id {user.id}) is ready. API token:")
    click.echo(issued.secret)


def _check_credentials(email: str, password: str | None) -> None:
    """The same rules as sign-up: a real email, and a password of the minimum length."""
    from marshmallow import ValidationError

    from dispatch_pay.accounts.schemas import CredentialsSchema
    from dispatch_pay.inputs import form_errors

    try:
        CredentialsSchema().load({"email": email, "password": password or "x" * 64})
    except ValidationError as exc:
        raise click.BadParameter(
            "; ".join(f"{field}: {' '.join(errors)}" for field, errors in form_errors(exc).items())
        ) from exc


@click.command("seed-demo")
def seed_demo() -> None:
    """Load the demo publication; running it again changes nothing."""
    from dispatch_pay.demo import seed

    for line in seed():
        click.echo(line)


def fill_fees(gateway: PaymentGateway, since_days: int, limit: int = FEE_BATCH) -> list[str]:
    """Ask Stripe for the fees still unknown; one line per fee recorded.

    One transaction per top-up, and none open while Stripe is asked. A top-up Stripe
    does not know (or has no settled charge for yet) is asked again next run; if Stripe
    is unavailable the batch stops there.
    """
    report: list[str] = []
    pending = fees.topups_without_fee(since_days, limit)
    db.session.commit()  # the read ends before Stripe is called
    for topup_id, pi_id in pending:
        try:
            fee = fees.ask_fee(gateway, topup_id, pi_id)
        except PaymentProviderUnavailable as exc:
            log.warning("fees: Stripe unavailable, %s left unknown: %s", pi_id, exc)
            report.append("fees: Stripe unavailable; unknown fees are asked again next run")
            break
        if fee is not None and fees.record_fee(topup_id, fee):
            report.append(fees.fee_line(topup_id, fee))
        db.session.commit()
    return report


@click.command("reconcile")
@click.option("--days", default=3, show_default=True, help="How far back to look.")
def reconcile_command(days: int) -> None:
    """Credit succeeded top-ups whose webhook never arrived (safe to run any time)."""
    from dispatch_pay.wallet.closing_api import refund_closed_accounts
    from dispatch_pay.wallet.crediting import reconcile

    try:
        gateway = require_gateway()
        lines = reconcile(gateway, timedelta(days=days))
        db.session.commit()
        closed_lines = refund_closed_accounts(gateway)
        fee_lines = fill_fees(gateway, days)
    except DomainError as exc:  # no Stripe keys: nothing to ask
        raise click.ClickException(exc.message) from exc
    except PaymentProviderUnavailable as exc:
        raise click.ClickException(f"Stripe is unavailable: {exc}") from exc
    except OperationalError as exc:
        raise click.ClickException(_database_down(exc)) from exc
    for line in lines:
        click.echo(line)
    click.echo(f"reconcile: {len(lines)} top-up(s) credited.")
    for line in closed_lines:
        click.echo(line)
    for line in fee_lines:
        click.echo(line)
    recorded = sum(1 for line in fee_lines if line.startswith("fee of "))
    click.echo(f"reconcile: {recorded} Stripe fee(s) recorded.")


@click.command("audit")
def audit_command() -> None:
    """Check every ledger invariant; exit 1 with a report on any mismatch, 2 if it cannot run.

    Anomalies an operator acknowledged (`audit-ack`) are listed apart and do not fail it.
    """
    from dispatch_pay.wallet.audit import audit
    from dispatch_pay.wallet.audit_acks import acknowledged_anomalies

    try:
        problems = audit()
        reviewed = acknowledged_anomalies()
    except OperationalError as exc:
        raise CouldNotRun(_database_down(exc)) from exc
    for line in problems:
        click.echo(line)
    if reviewed:
        click.echo(f"audit: {len(reviewed)} acknowledged anomaly(ies), not counted:")
        for line in reviewed:
            click.echo(f"  {line}")
    if problems:
        click.echo(f"audit: {len(problems)} problem(s) found.")
        raise SystemExit(1)
    click.echo("audit: every ledger invariant holds.")


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name (a container user without a passwd entry)
        return ""


@click.command("audit-ack")
@click.argument("event_id")
@click.option("--note", required=True, help="Why the anomaly needs nothing more (kept for good).")
@click.option(
    "--by",
    "reviewer",
    default=lambda: _login_name(),
    show_default="the login name",
    help="Who reviewed it.",
)
def audit_ack_command(event_id: str, note: str, reviewer: str) -> None:
    """Record that a Stripe event `audit` reported was reviewed; audit stops failing on it.

    The event stays as stored; the acknowledgement is append-only. An unknown, unreported
    or already acknowledged event is refused (exit 1) and nothing changes.
    """
    from dispatch_pay.wallet.audit_acks import acknowledge

    try:
        ack = acknowledge(event_id, by=reviewer, note=note)
        db.session.commit()
    except DomainError as exc:
        db.session.rollback()
        raise click.ClickException(exc.message) from exc
    except OperationalError as exc:
        raise CouldNotRun(_database_down(exc)) from exc
    click.echo(
        f"audit-ack: Stripe event {event_id} acknowledged by {ack.acknowledged_by} "
        f"at {ack.acknowledged_at:%Y-%m-%d %H:%M} UTC."
    )


@click.group("signing-key", help="The Ed25519 keys that sign verification manifests.")
def signing_key_group() -> None:
    pass


@signing_key_group.command("rotate")
def signing_key_rotate() -> None:
    """Make a new signing key for new manifests; old public keys stay published."""
    from dispatch_pay.verification.signing import rotate_key

    key = rotate_key()
    db.session.commit()
    click.echo(f"New signing key {key.kid}; older keys stay in the published key set.")


@click.command("mcp")
@click.option(
    "--token-env",
    default="DISPATCH_AGENT_TOKEN",
    show_default=True,
    help="The environment variable that holds the agent token (never a command-line argument).",
)
def mcp_command(token_env: str) -> None:
    """Serve the MCP tools over stdio (for MCP clients that launch their servers)."""
    import os

    import anyio

    from dispatch_pay.agents.mcp_server import agent_token, build_server

    secret = os.environ.get(token_env, "").strip()
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    try:
        agent_token(secret)  # refuse to start for a missing, revoked or non-agent token
        db.session.commit()
    except DomainError as exc:
        raise click.ClickException(f"{token_env}: {exc.message}") from exc
    finally:
        db.session.remove()
    base = app.config.get("PUBLIC_BASE_URL") or "http://localhost"
    server = build_server(app, secret_of=lambda _ctx: secret, base_url=lambda _ctx: base)
    anyio.run(server.run_stdio_async)


@click.command("send-mail")
@click.option("--forever", is_flag=True, help="Keep delivering as mail is queued.")
@click.option("--interval", default=2.0, show_default=True, help="Seconds between polls.")
def send_mail_command(forever: bool, interval: float) -> None:
    """Deliver queued mail (SMTP at MAIL_URL, or .eml files under instance/outbox/)."""
    import time

    from dispatch_pay.mail.delivery import deliver_due, transport_from_url

    config = current_app.config
    transport = transport_from_url(
        config["MAIL_URL"],
        Path(current_app.instance_path) / "outbox",
        timeout=float(config["MAIL_TIMEOUT_SECONDS"]),
    )
    click.echo(f"send-mail: delivering to {transport.describe()}")
    while True:
        try:
            sent, failed = deliver_due(transport, config["MAIL_FROM"])
        except OperationalError as exc:
            if not forever:
                raise CouldNotRun(_database_down(exc)) from exc
            click.echo(f"send-mail: {_database_down(exc)}", err=True)
            sent = failed = 0
        finally:
            db.session.remove()
        if sent or failed or not forever:
            click.echo(f"send-mail: {sent} sent, {failed} to retry later.", err=False)
        if not forever:
            return
        time.sleep(interval)


def register(app: Flask) -> None:
    app.cli.add_command(signing_key_group)
    app.cli.add_command(mcp_command)
    app.cli.add_command(send_mail_command)
    app.cli.add_command(reconcile_command)
    app.cli.add_command(audit_command)
    app.cli.add_command(audit_ack_command)
    app.cli.add_command(db_group)
    app.cli.add_command(create_publisher)
    app.cli.add_command(seed_demo)
