"""The one HTML parser of the tests: meta tags, JSON-LD, elements, forms and script blocks."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from typing import Any


class PageParser(HTMLParser):
    """Collects what the tests look at in a page.

    `elements` has every start tag with its attributes (a bare attribute reads as ""), `tags`
    the same with the raw values (None for a bare attribute); `scripts` is every script
    block as (attributes, text); `meta` and `json_ld` are the page's metadata.
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.meta: dict[str, str] = {}
        self.json_ld: list[Any] = []
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.forms: list[dict[str, str]] = []
        self._in_script: dict[str, str | None] | None = None
        self._buffer: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        self.elements.append((tag, values))
        self.tags.append((tag, dict(attrs)))
        if tag == "meta":
            key = values.get("property") or values.get("name")
            if key:
                self.meta[key] = values.get("content", "")
        if tag == "script":
            self._in_script = dict(attrs)
            self._buffer = []
        if tag == "form":
            self.forms.append(values)

    def handle_data(self, data: str) -> None:
        if self._in_script is not None:
            self._buffer.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._in_script is not None:
            text = "".join(self._buffer)
            self.scripts.append((self._in_script, text))
            if self._in_script.get("type") == "application/ld+json":
                self.json_ld.append(json.loads(text))
            self._in_script = None

    def has_class(self, name: str) -> bool:
        return any(name in attrs.get("class", "").split() for _tag, attrs in self.elements)


def parse_page(html: str) -> PageParser:
    parser = PageParser()
    parser.feed(html)
    parser.close()
    return parser


def executable_problems(html: str) -> list[str]:
    """Inline script, inline handlers or script URLs a CSP without 'unsafe-inline' would block."""
    page = parse_page(html)
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
