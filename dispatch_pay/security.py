"""Response headers that shut the browser-side doors: CSP, framing, sniffing, referrers, HSTS.

The Content-Security-Policy allows scripts, connections and frames only from this site
and from Stripe.js (https://js.stripe.com, or localstripe's origin when STRIPE_API_BASE
points at it). No page uses inline script or inline event handlers; the one inline
`<script type="application/ld+json">` is a data block that browsers never execute, so
`script-src` does not need `'unsafe-inline'`.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, Response
from werkzeug.middleware.proxy_fix import ProxyFix

# Stripe's documented requirements for Stripe.js: the script and its iframes come from
# js.stripe.com (and its subdomains), API calls go to api.stripe.com, and 3-D Secure
# challenges are framed from hooks.stripe.com.
STRIPE_SCRIPT = ("https://js.stripe.com", "https://*.js.stripe.com")
STRIPE_CONNECT = ("https://api.stripe.com",)
STRIPE_FRAME = ("https://js.stripe.com", "https://*.js.stripe.com", "https://hooks.stripe.com")
HSTS = "max-age=63072000; includeSubDomains"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(stripe_api_base: str | None) -> str:
    script: tuple[str, ...]
    connect: tuple[str, ...]
    frame: tuple[str, ...]
    if stripe_api_base:
        # localstripe serves its Stripe.js stand-in, its API and its 3-D Secure page itself.
        local = _origin(stripe_api_base)
        script, connect, frame = (local,), (local,), (local,)
    else:
        script, connect, frame = STRIPE_SCRIPT, STRIPE_CONNECT, STRIPE_FRAME
    directives = {
        "default-src": ("'self'",),
        "script-src": ("'self'", *script),
        "connect-src": ("'self'", *connect),
        "frame-src": frame,
        # Article Markdown may embed images from any https host; images cannot run script.
        "img-src": ("'self'", "https:", "data:"),
        "style-src": ("'self'",),
        "object-src": ("'none'",),
        "base-uri": ("'none'",),
        "form-action": ("'self'",),
        "frame-ancestors": ("'none'",),
    }
    return "; ".join(f"{name} {' '.join(values)}" for name, values in directives.items())


def security_headers(app: Flask) -> dict[str, str]:
    headers = {
        "Content-Security-Policy": content_security_policy(app.config.get("STRIPE_API_BASE")),
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate CSP 2
        "Referrer-Policy": "strict-origin-when-cross-origin",
        "Cross-Origin-Resource-Policy": "same-origin",
    }
    if app.config.get("PRODUCTION"):
        headers["Strict-Transport-Security"] = HSTS
    return headers


def http_url(value: object) -> str | None:
    """The URL if it is http(s), else None: only such links are rendered (defence in depth)."""
    if not isinstance(value, str):
        return None
    scheme = urlsplit(value.strip()).scheme.lower()
    return value if scheme in {"http", "https"} else None


def register_security(app: Flask) -> None:
    headers = security_headers(app)

    @app.after_request
    def _secure_headers(response: Response) -> Response:
        for name, value in headers.items():
            response.headers.setdefault(name, value)
        return response

    app.add_template_filter(http_url, "http_url")


def trust_proxies(app: Flask) -> None:
    """Behind N reverse proxies, trust the last N X-Forwarded-* hops; never more, or
    clients could spoof their address.

    They give the client address (rate limits, logs), the scheme (Secure cookies, HSTS)
    and the host. This must wrap every other middleware, the public page cache
    included: the cache keys pages on the origin they were built from, so it has to see
    the same (forwarded) origin as the views do.
    """
    proxies = int(app.config.get("TRUSTED_PROXIES") or 0)
    if proxies:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies, x_port=proxies
        )
