"""Flask extensions, created unbound and initialised in create_app."""

from __future__ import annotations

from flask import request
from flask_limiter import Limiter
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect


def _client_address() -> str:
    return request.remote_addr or "unknown"


login_manager = LoginManager()
csrf = CSRFProtect()
limiter = Limiter(key_func=_client_address, default_limits=[])
