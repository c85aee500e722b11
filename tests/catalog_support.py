"""Helpers shared by the catalog, accounts and publishing tests."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from typing import Any

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.conftest import csrf_token_from
from tests.factories import PASSWORD


def login_browser(client: FlaskClient, email: str, password: str = PASSWORD) -> None:
    """Log in through the HTML form, as a browser does (with the page's CSRF token)."""
    token = csrf_token_from(client, "/login")
    response = client.post(
        "/login", data={"email": email, "password": password, "csrf_token": token}
    )
    assert response.status_code == 302, response.get_data(as_text=True)[:500]


def assert_error(response: TestResponse, status: int, code: str | None = None) -> dict[str, Any]:
    """The contract's error shape: {"error": {"code", "message", "fields"?}}."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    body = response.get_json(silent=True)
    assert isinstance(body, dict), response.get_data(as_text=True)[:300]
    error = body.get("error")
    assert isinstance(error, dict), body
    assert isinstance(error.get("code"), str) and re.fullmatch(r"[a-z][a-z0-9_]*", error["code"])
    assert isinstance(error.get("message"), str) and error["message"]
    assert isinstance(error.get("fields"), dict), body  # always present, {} when no field
    if code is not None:
        assert error["code"] == code, body
    return body


class PageParser(HTMLParser):
    """Collects what the tests look at in a page: meta tags, JSON-LD, ids and classes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.meta: dict[str, str] = {}
        self.json_ld: list[Any] = []
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.scripts: list[dict[str, str]] = []
        self.forms: list[dict[str, str]] = []
        self._in_json_ld = False
        self._buffer: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        self.elements.append((tag, values))
        if tag == "meta":
            key = values.get("property") or values.get("name")
            if key:
                self.meta[key] = values.get("content", "")
        if tag == "script":
            self.scripts.append(values)
            self._in_json_ld = values.get("type") == "application/ld+json"
            self._buffer = []
        if tag == "form":
            self.forms.append(values)

    def handle_data(self, data: str) -> None:
        if self._in_json_ld:
            self._buffer.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._in_json_ld:
            self.json_ld.append(json.loads("".join(self._buffer)))
            self._in_json_ld = False

    def has_class(self, name: str) -> bool:
        return any(name in attrs.get("class", "").split() for _tag, attrs in self.elements)


def parse_page(html: str) -> PageParser:
    parser = PageParser()
    parser.feed(html)
    parser.close()
    return parser
