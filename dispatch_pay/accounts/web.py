"""Sign-up, login and logout pages."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_user, logout_user
from marshmallow import ValidationError
from werkzeug.wrappers import Response

from dispatch_pay.accounts import services
from dispatch_pay.accounts.limits import login_email_limit, login_limit, signup_limit
from dispatch_pay.accounts.schemas import CredentialsSchema, LoginSchema
from dispatch_pay.errors import DomainError
from dispatch_pay.inputs import form_errors
from dispatch_pay.urls import local_path

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
    login_user(user)
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
    login_user(user)
    return redirect(next_url)


@bp.route("/logout", methods=["GET", "POST"])
def logout() -> Response | str:
    if request.method == "GET":
        return render_template("logout.html")
    if current_user.is_authenticated:
        logout_user()
    flash("You are logged out.")
    return redirect(url_for("catalog.front_page"))
