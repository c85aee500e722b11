"""Rate limits on credentials, shared by the HTML forms and the JSON API.

The login form and `POST /api/v1/tokens` draw on one bucket per client address and one per
target email, and the sign-up form and `POST /api/v1/readers` on one bucket per address,
so an attacker gains nothing by switching between the page and the API. Limits live in
Redis when REDIS_URL is set (shared by every app server), otherwise in process memory.
"""

from __future__ import annotations

from flask import request
from werkzeug.exceptions import HTTPException

from dispatch_pay.extensions import limiter

LOGIN_PER_ADDRESS = "30 per hour; 10 per minute"
# Guessing one account's password from many addresses is slowed down per email.
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


login_limit = limiter.shared_limit(LOGIN_PER_ADDRESS, scope="login", methods=["POST"])
login_email_limit = limiter.shared_limit(
    LOGIN_PER_EMAIL, scope="login-email", key_func=credential_email, methods=["POST"]
)
signup_limit = limiter.shared_limit(SIGNUP_PER_ADDRESS, scope="signup", methods=["POST"])

# Forms that make the site send mail (sign-in links, resets): per client address here,
# and per recipient in the outbox (dispatch_pay.mail.outbox.recipient_over_limit).
MAIL_FORMS_PER_ADDRESS = "20 per hour; 5 per minute"
mail_form_limit = limiter.shared_limit(MAIL_FORMS_PER_ADDRESS, scope="mail-forms", methods=["POST"])
