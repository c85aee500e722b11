"""Operational endpoints for load balancers and monitoring, and the site's icon."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, send_from_directory
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from models import db

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    try:
        db.session.execute(text("SELECT 1"))
        database = "ok"
    except SQLAlchemyError:
        db.session.rollback()
        database = "unavailable"
    stripe = "configured" if current_app.config.get("STRIPE_SECRET_KEY") else "not_configured"
    status = 200 if database == "ok" else 503
    return jsonify(
        {"status": "ok" if status == 200 else "unavailable", "database": database, "stripe": stripe}
    ), status


FAVICON_MAX_AGE = 7 * 24 * 3600


@bp.get("/favicon.ico")
def favicon() -> Response:
    """Browsers ask for /favicon.ico on every site: a small icon, cached for a week."""
    response = send_from_directory(
        str(current_app.static_folder), "favicon.ico", max_age=FAVICON_MAX_AGE
    )
    response.cache_control.public = True
    return response
