"""Rate limits on credentials, shared by the HTML forms and the JSON API.

The login form and `POST /api/v1/tokens` draw on one bucket per client address and one per
target email, and the sign-up form and `POST /api/v1/readers` on one bucket per address,
so an attacker gains nothing by switching between the page and the API. Limits live in
Redis when REDIS_URL is set (shared by every app server), otherwise in process memory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

from flask import Response, request
from werkzeug.exceptions import HTTPException

from dispatch_pay.accounts import devices
from dispatch_pay.extensions import limiter

P = ParamSpec("P")
R = TypeVar("R")

LOGIN_PER_ADDRESS = "30 per hour; 10 per minute"
# Wrong passwords for one account from one address.
LOGIN_PER_EMAIL_AND_ADDRESS = "5 per 15 minutes"
# Wrong passwords for one account from anywhere, counted only for devices that never
# logged in to it: a browser with the account's device cookie is exempt, so an
# attacker spreading guesses over many addresses cannot lock the owner out. The window
# is fixed: no lock outlives the 15 minutes in which its attempts were made.
LOGIN_PER_EMAIL = "10 per 15 minutes"
SIGNUP_PER_ADDRESS = "20 per hour; 5 per minute"


def credential_email() -> str:
    """The email a login attempt targets, from the form or the JSON body.

    It must never raise: flask-limiter takes any error while evaluating limits for a
    storage failure and moves this process's counters to memory. A body it cannot read
    (too large, cut off) gets one shared key; the view then refuses that body itself.
    """
    try:
        email = request.form.get("email") if request.form else None
        if email is None:
            payload = request.get_json(force=True, silent=True)
            email = payload.get("email") if isinstance(payload, dict) else None
    except HTTPException:
        return "email:unreadable"
    if not isinstance(email, str) or not email.strip():
        return "email:none"
    return f"email:{email.strip().lower()[:254]}"


def credential_email_and_address() -> str:
    return f"{credential_email()}|{request.remote_addr or 'unknown'}"


def from_trusted_device() -> bool:
    email = credential_email()
    return email.startswith("email:") and devices.trusted_for(email.removeprefix("email:"))


def wrong_password(response: Response) -> bool:
    """Only failed logins count towards the per-account limits."""
    return response.status_code == 401


login_limit = limiter.shared_limit(LOGIN_PER_ADDRESS, scope="login", methods=["POST"])
_per_account_and_address = limiter.shared_limit(
    LOGIN_PER_EMAIL_AND_ADDRESS,
    scope="login-email-address",
    key_func=credential_email_and_address,
    methods=["POST"],
    deduct_when=wrong_password,
)
_per_account = limiter.shared_limit(
    LOGIN_PER_EMAIL,
    scope="login-email",
    key_func=credential_email,
    methods=["POST"],
    deduct_when=wrong_password,
    exempt_when=from_trusted_device,
)


def login_email_limit(view: Callable[P, R]) -> Callable[P, R]:
    """Both per-account limits, for the login form and `POST /api/v1/tokens` alike."""
    return _per_account_and_address(_per_account(view))


signup_limit = limiter.shared_limit(SIGNUP_PER_ADDRESS, scope="signup", methods=["POST"])

# Forms that make the site send mail (sign-in links, resets): per client address here,
# and per recipient in the outbox (dispatch_pay.mail.outbox.recipient_over_limit).
MAIL_FORMS_PER_ADDRESS = "20 per hour; 5 per minute"
mail_form_limit = limiter.shared_limit(MAIL_FORMS_PER_ADDRESS, scope="mail-forms", methods=["POST"])
