"""dispatch_pay: a per-article paywall backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask, Request, Response, request

from dispatch_pay.accounts.sessions import load_session_user
from dispatch_pay.catalog.public_cache import register_public_cache
from dispatch_pay.config import load_config
from dispatch_pay.extensions import csrf, limiter, login_manager
from dispatch_pay.inputs import DatabaseIdConverter, reject_unsafe_request_text
from dispatch_pay.money import format_money
from dispatch_pay.payments.gateway import GATEWAY_KEY, WEBHOOKS_KEY, PaymentGateway
from dispatch_pay.request_log import register_request_logging
from dispatch_pay.security import register_security, trust_proxies
from dispatch_pay.wallet.api import PURCHASE_RESULT
from dispatch_pay.wallet.quick_purchase import register_quick_purchases
from dispatch_pay.webhooks.quick_credit import register_quick_credits
from models import User, db

ROOT = Path(__file__).resolve().parent.parent
# create_app's default: the gateway the configuration describes (Stripe, or none).
FROM_CONFIG = object()


def create_app(
    config: dict[str, Any] | None = None,
    *,
    payment_gateway: PaymentGateway | object | None = FROM_CONFIG,
    configure_database: bool = True,
) -> Flask:
    """The app. Tests pass their own `payment_gateway` (None disables payments), and
    `configure_database=False` when they bind the session to their own connection."""
    app = Flask(
        __name__,
        instance_path=str(ROOT / "instance"),
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
    )
    app.config.update(load_config(Path(app.instance_path), config))
    register_request_logging(app)  # first, so every request (even a 429) gets its id
    register_security(app)
    register_extensions(app, configure_database)
    register_payment_gateway(app, payment_gateway)
    register_input_guards(app)
    register_blueprints(app)
    register_errorhandlers(app)
    register_transaction_boundary(app)
    register_template_helpers(app)
    register_commands(app)
    register_public_cache(app)
    register_quick_purchases(app, PURCHASE_RESULT.dump)
    register_quick_credits(app)
    register_mcp(app)
    register_listeners()
    trust_proxies(app)  # last: the outermost middleware (see its docstring)
    return app


def register_extensions(app: Flask, configure_database: bool = True) -> None:
    if configure_database:
        db.configure(app.config["DATABASE_URL"])
    csrf.init_app(app)
    limiter.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "accounts.login"
    login_manager.login_message = "Log in to continue."
    # Sessions live on the server (accounts.sessions); flask-login's own cookie
    # fingerprinting would only rewrite the cookie on every request.
    login_manager.session_protection = None

    @login_manager.request_loader
    def _load_user(_request: Request) -> User | None:
        return load_session_user()


def register_listeners() -> None:
    """Domain events wired to their consumers (process-wide; registering twice is a no-op)."""
    from dispatch_pay.verification.correction_mail import mail_buyers
    from dispatch_pay.verification.notices import on_correction

    on_correction(mail_buyers)


def register_payment_gateway(app: Flask, gateway: PaymentGateway | object | None) -> None:
    """Stripe when keys are configured; otherwise buying is disabled (reading still works).

    Webhooks are verified with their own secret, with or without an API key.
    """
    from dispatch_pay.payments.stripe_gateway import StripeGateway, StripeWebhooks

    app.extensions[WEBHOOKS_KEY] = StripeWebhooks(app.config["STRIPE_WEBHOOK_SECRET"])
    if gateway is not FROM_CONFIG:
        app.extensions[GATEWAY_KEY] = gateway
        return
    key = app.config["STRIPE_SECRET_KEY"]
    if not key:
        app.extensions[GATEWAY_KEY] = None
        return
    base = app.config["STRIPE_API_BASE"]
    app.extensions[GATEWAY_KEY] = StripeGateway(
        key,
        app.config["STRIPE_PUBLISHABLE_KEY"],
        base,
        budget=float(app.config["STRIPE_TIMEOUT_SECONDS"]),
        retries=int(app.config["STRIPE_NETWORK_RETRIES"]),
        max_concurrent=int(app.config["STRIPE_MAX_CONCURRENT_CALLS"]),
    )


def register_blueprints(app: Flask) -> None:
    from dispatch_pay import ops
    from dispatch_pay.accounts import api as accounts_api
    from dispatch_pay.accounts import web as accounts_web
    from dispatch_pay.agents import api as agents_api
    from dispatch_pay.agents import web as agents_web
    from dispatch_pay.api import openapi
    from dispatch_pay.catalog import api as catalog_api
    from dispatch_pay.catalog import web as catalog_web
    from dispatch_pay.publisher import api as publisher_api
    from dispatch_pay.publisher import web as publisher_web
    from dispatch_pay.verification import web as verification_web
    from dispatch_pay.wallet import api as wallet_api
    from dispatch_pay.wallet import closing_api, receipts_web
    from dispatch_pay.wallet import web as wallet_web
    from dispatch_pay.webhooks import web as webhooks_web

    for module in (
        ops,
        accounts_web,
        catalog_web,
        wallet_web,
        agents_web,
        publisher_web,
        verification_web,
        webhooks_web,
        accounts_api,
        agents_api,
        catalog_api,
        publisher_api,
        wallet_api,
        openapi,
    ):
        app.register_blueprint(module.bp)
    app.register_blueprint(receipts_web.bp)
    app.register_blueprint(receipts_web.api_bp)
    app.register_blueprint(closing_api.bp)
    app.register_blueprint(closing_api.web_bp)


def register_mcp(app: Flask) -> None:
    """/mcp: the MCP server for agents, on the same host and port (outermost WSGI layer)."""
    from dispatch_pay.agents.mcp_http import mount_mcp

    mount_mcp(app)


def register_input_guards(app: Flask) -> None:
    """URL ids that fit the database, and no text it cannot store (404/422, never 500)."""
    app.url_map.converters["int"] = DatabaseIdConverter
    app.before_request(reject_unsafe_request_text)


def register_errorhandlers(app: Flask) -> None:
    from dispatch_pay.errors import register_errorhandlers as register

    register(app)


def register_transaction_boundary(app: Flask) -> None:
    """One transaction per request: commit what a successful request did, else roll back."""

    @app.after_request
    def _commit(response: Response) -> Response:
        if response.status_code < 400:
            db.session.commit()
        else:
            db.session.rollback()
        return response

    @app.teardown_appcontext
    def _remove_session(_exc: BaseException | None) -> None:
        db.session.remove()


def register_template_helpers(app: Flask) -> None:
    @app.template_filter("money")
    def _money(value: dict[str, Any]) -> str:
        return format_money(int(value["amount"]), str(value["currency"]))

    @app.context_processor
    def _site() -> dict[str, Any]:
        return {"site_name": app.config["SITE_NAME"], "request_path": request.path}


def register_commands(app: Flask) -> None:
    from dispatch_pay.cli import register

    register(app)
