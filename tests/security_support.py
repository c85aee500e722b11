"""Helpers shared by the security tests: page parsing, table snapshots."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

from sqlalchemy import func, select

from models import db
from models.base import Base


def table_counts() -> dict[str, int]:
    """Rows per table: equal before and after means a refused request changed nothing."""
    db.session.expire_all()
    return {
        table.name: int(db.session.scalar(select(func.count()).select_from(table)) or 0)
        for table in Base.metadata.sorted_tables
    }


class PageScan(HTMLParser):
    """Collects what matters for XSS: elements, attributes and script blocks."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self._in_script: dict[str, str | None] | None = None
        self._script_text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._in_script = dict(attrs)
            self._script_text = []

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        if self._in_script is not None:
            self._script_text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._in_script is not None:
            self.scripts.append((self._in_script, "".join(self._script_text)))
            self._in_script = None


def scan(html: str) -> PageScan:
    parser = PageScan()
    parser.feed(html)
    parser.close()
    return parser


def executable_problems(html: str) -> list[str]:
    """Inline script, inline handlers or script URLs a CSP without 'unsafe-inline' would block."""
    page = scan(html)
    problems: list[str] = []
    for attrs, text in page.scripts:
        kind = (attrs.get("type") or "").lower()
        if kind == "application/ld+json":
            continue
        if not attrs.get("src") or text.strip():
            problems.append(f"inline script: {text[:80]!r}")
    for tag, attrs in page.tags:
        for name, value in attrs.items():
            if name.lower().startswith("on"):
                problems.append(f"<{tag} {name}=...>")
            scriptable = ("javascript:", "vbscript:", "data:")
            if name in {"href", "src", "action", "formaction"} and (
                (value or "").strip().lower().startswith(scriptable)
            ):
                problems.append(f"<{tag} {name}={(value or '')[:40]!r}>")
    return problems


def json_error(response: Any) -> dict[str, Any]:
    body = response.get_json()
    assert isinstance(body, dict) and set(body["error"]) >= {"code", "message"}, body
    return dict(body["error"])
