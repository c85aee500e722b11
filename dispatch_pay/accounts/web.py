"""Sign-up, login and logout pages."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from marshmallow import Schema, ValidationError
from werkzeug.wrappers import Response

from dispatch_pay.accounts import links, services, sessions
from dispatch_pay.accounts.limits import (
    login_email_limit,
    login_limit,
    mail_form_limit,
    signup_limit,
)
from dispatch_pay.accounts.schemas import (
    ChangeEmailSchema,
    ChangePasswordSchema,
    CredentialsSchema,
    EmailRequestSchema,
    LoginSchema,
    NewPasswordSchema,
)
from dispatch_pay.accounts.sessions import begin_session, end_current_session
from dispatch_pay.errors import DomainError, not_found
from dispatch_pay.inputs import ROW_ID, form_errors
from dispatch_pay.urls import local_path
from models import LINK_EMAIL_CHANGE, LINK_PASSWORD_RESET, LINK_SIGN_IN

bp = Blueprint("accounts", __name__)


@bp.route("/signup", methods=["GET", "POST"])
@signup_limit
def signup() -> Response | str | tuple[str, int]:
    next_url = local_path(request.values.get("next"))
    if request.method == "GET":
        return render_template("signup.html", next_url=next_url, errors={}, email="")
    try:
        data = CredentialsSchema().load(
            {"email": request.form.get("email", ""), "password": request.form.get("password", "")}
        )
        user = services.register_user(data["email"], data["password"])
    except ValidationError as exc:
        return render_template(
            "signup.html",
            next_url=next_url,
            errors=form_errors(exc),
            email=request.form.get("email", ""),
        ), 422
    except DomainError as exc:
        return render_template(
            "signup.html",
            next_url=next_url,
            errors=exc.fields or {"_schema": [exc.message]},
            email=request.form.get("email", ""),
        ), exc.status
    begin_session(user)
    flash("Welcome! Your account is ready.")
    return redirect(next_url)


@bp.route("/login", methods=["GET", "POST"])
@login_limit
@login_email_limit
def login() -> Response | str | tuple[str, int]:
    next_url = local_path(request.values.get("next"))
    if request.method == "GET":
        return render_template("login.html", next_url=next_url, error=None, email="")
    email = request.form.get("email", "")
    try:
        data = LoginSchema().load({"email": email, "password": request.form.get("password", "")})
    except ValidationError:
        return render_template(
            "login.html", next_url=next_url, error="Enter your email and password.", email=email
        ), 422
    user = services.authenticate(data["email"], data["password"])
    if user is None:
        return render_template(
            "login.html", next_url=next_url, error="Email or password is wrong.", email=email
        ), 401
    begin_session(user)
    return redirect(next_url)


@bp.route("/logout", methods=["GET", "POST"])
def logout() -> Response | str:
    if request.method == "GET":
        return render_template("logout.html")
    end_current_session()
    flash("You are logged out.")
    return redirect(url_for("catalog.front_page"))


def _load_form(schema: Schema) -> dict[str, Any]:
    """The form's fields named by `schema`, loaded (ValidationError on bad input)."""
    raw = {name: request.form.get(name, "") for name in schema.fields}
    loaded: dict[str, Any] = schema.load(raw)
    return loaded


def _mail_request_page(
    template: str, request_mail: Callable[[str], None]
) -> Response | str | tuple[str, int]:
    """GET the form; POST always answers the same page, account or not (no enumeration)."""
    if request.method == "GET":
        return render_template(template, sent=False, errors={}, email="")
    try:
        data = _load_form(EmailRequestSchema())
    except ValidationError as exc:
        return render_template(
            template, sent=False, errors=form_errors(exc), email=request.form.get("email", "")
        ), 422
    request_mail(data["email"])
    return render_template(template, sent=True, errors={}, email=data["email"])


@bp.route("/login/link", methods=["GET", "POST"])
@mail_form_limit
def login_link() -> Response | str | tuple[str, int]:
    return _mail_request_page("login_link.html", links.request_sign_in_link)


@bp.route("/login/link/<token>", methods=["GET", "POST"])
def sign_in_link(token: str) -> Response | str | tuple[str, int]:
    """GET shows a button (mail scanners follow links); POST signs in and uses the link."""
    link = links.peek(token, LINK_SIGN_IN)
    if request.method == "GET":
        return render_template(
            "link_confirm.html",
            title="Sign in" if link.user_id else "Create your account",
            text=f"Sign in as {link.email}."
            if link.user_id
            else f"There is no account for {link.email} yet. Create it and sign in?",
            button="Sign in" if link.user_id else "Create my account and sign in",
        )
    links.sign_in_with_link(token)
    flash("You are signed in.")
    return redirect(url_for("catalog.front_page"))


@bp.route("/password/reset", methods=["GET", "POST"])
@mail_form_limit
def password_reset() -> Response | str | tuple[str, int]:
    return _mail_request_page("password_reset.html", links.request_password_reset)


@bp.route("/password/reset/<token>", methods=["GET", "POST"])
def password_reset_link(token: str) -> Response | str | tuple[str, int]:
    link = links.peek(token, LINK_PASSWORD_RESET)
    if request.method == "GET":
        return render_template("password_new.html", email=link.email, errors={})
    try:
        data = _load_form(NewPasswordSchema())
    except ValidationError as exc:
        return render_template("password_new.html", email=link.email, errors=form_errors(exc)), 422
    links.reset_password_with_link(token, data["password"])
    flash("Your password is changed, and every other browser is logged out.")
    return redirect(url_for("accounts.account_page"))


@bp.route("/account/email/<token>", methods=["GET", "POST"])
def email_change_link(token: str) -> Response | str | tuple[str, int]:
    link = links.peek(token, LINK_EMAIL_CHANGE)
    if request.method == "GET":
        return render_template(
            "link_confirm.html",
            title="Confirm your new address",
            text=f"Make {link.email} the address of your account?",
            button="Confirm",
        )
    links.change_email_with_link(token)
    flash("Your address is changed.")
    return redirect(url_for("accounts.account_page"))


def _account_view(status: int = 200, errors: dict[str, list[str]] | None = None) -> tuple[str, int]:
    user = current_user._get_current_object()
    return render_template(
        "account.html",
        user=user,
        sessions=sessions.list_sessions(user),
        current_session=sessions.current_session_id(),
        errors=errors or {},
    ), status


@bp.get("/account")
@login_required
def account_page() -> tuple[str, int]:
    return _account_view()


@bp.post("/account/password")
@login_required
def change_password() -> Response | tuple[str, int]:
    try:
        data = _load_form(ChangePasswordSchema())
        services.change_password(
            current_user._get_current_object(), data["current_password"], data["new_password"]
        )
    except ValidationError as exc:
        return _account_view(422, form_errors(exc))
    except DomainError as exc:
        return _account_view(exc.status, exc.fields or {"_schema": [exc.message]})
    flash("Your password is changed, and every other browser is logged out.")
    return redirect(url_for("accounts.account_page"))


@bp.post("/account/email")
@login_required
def change_email() -> Response | tuple[str, int]:
    user = current_user._get_current_object()
    try:
        data = _load_form(ChangeEmailSchema())
        services.require_password(user, data["password"])
        links.request_email_change(user, data["email"])
    except ValidationError as exc:
        return _account_view(422, form_errors(exc))
    except DomainError as exc:
        return _account_view(exc.status, exc.fields or {"_schema": [exc.message]})
    flash(f"We sent a link to {data['email']}. Your address changes when you open it.")
    return redirect(url_for("accounts.account_page"))


@bp.post(f"/account/sessions/<{ROW_ID}:session_id>/end")
@login_required
def end_session(session_id: int) -> Response:
    user = current_user._get_current_object()
    ending_this_one = session_id == sessions.current_session_id()
    if not sessions.end_session(user, session_id):
        raise not_found("session")
    if ending_this_one:
        sessions.end_current_session()
        flash("You are logged out.")
        return redirect(url_for("catalog.front_page"))
    flash("That browser is logged out.")
    return redirect(url_for("accounts.account_page"))


@bp.post("/account/sessions/end-all")
@login_required
def end_all_sessions() -> Response:
    """ "Log out everywhere": every session of the account ends, this one included."""
    sessions.end_sessions(current_user._get_current_object())
    sessions.end_current_session()
    flash("You are logged out everywhere.")
    return redirect(url_for("catalog.front_page"))
