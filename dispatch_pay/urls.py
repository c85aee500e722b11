"""Where the site's links lead: absolute URLs for others to follow, and safe local `next`s.

Every absolute URL the app writes (canonical and OpenGraph links, JSON-LD, feeds, the
sitemap, `purchase_url`, mail, manifests) is built by `absolute_url`. With
PUBLIC_BASE_URL set it is built from that origin alone, never from a request header:
a page built for one request may be cached and served to everyone, so a forged `Host`
or `X-Forwarded-Host` must not be able to reach it. Without PUBLIC_BASE_URL
(development) the request's effective origin is used, and the public cache keys pages
on that origin (see catalog/public_cache.py).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import current_app, has_request_context, url_for


def absolute_url(endpoint: str, **values: Any) -> str:
    """The absolute URL of an endpoint, for pages, feeds, API answers, mail and manifests."""
    base = current_app.config.get("PUBLIC_BASE_URL")
    if base is None and has_request_context():
        return url_for(endpoint, _external=True, **values)
    anchor = values.pop("_anchor", None)
    current_app.inject_url_defaults(endpoint, values)
    parts = urlsplit(base or _offline_origin())
    adapter = current_app.url_map.bind(
        parts.netloc, script_name=parts.path or "/", url_scheme=parts.scheme
    )
    url = adapter.build(endpoint, values, force_external=True)
    return f"{url}#{anchor}" if anchor else url


def _offline_origin() -> str:
    """No request and no PUBLIC_BASE_URL (a command in development)."""
    scheme = current_app.config.get("PREFERRED_URL_SCHEME") or "http"
    return f"{scheme}://{current_app.config.get('SERVER_NAME') or 'localhost'}"


def local_path(target: str | None) -> str:
    """`target` if it is a plain path on this site, else `/`: for every `next` parameter.

    Browsers drop tabs and newlines from URLs and read `\\` as `/`, so `/\\t/evil` and
    `/\\evil` would lead to another host; control characters would also break the
    Location header (a 500). Such values are replaced, never repaired.
    """
    if (
        not target
        or not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
        or any(_unsafe(c) for c in target)
    ):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    return target


def _unsafe(char: str) -> bool:
    """Control characters (C0, DEL, C1) and Unicode line or paragraph separators."""
    code = ord(char)
    return code < 0x20 or 0x7F <= code <= 0x9F or code in (0x2028, 0x2029)
