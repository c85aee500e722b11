"""Article bodies are Markdown rendered to HTML that is safe to serve to readers:
no script, no event handlers, no javascript:/data: links, whatever the encoding."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

import pytest
from flask.testing import FlaskClient
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatch_pay.catalog.markdown import normalise_text, render_markdown, text_sha256
from tests.support.factories import make_article

SAFE_SCHEMES = {"http", "https", "mailto"}
DANGEROUS_TAGS = {
    "script",
    "style",
    "iframe",
    "frame",
    "object",
    "embed",
    "svg",
    "math",
    "form",
    "input",
    "button",
    "link",
    "meta",
    "base",
    "textarea",
    "template",
}
URL_ATTRIBUTES = {"href", "src", "action", "formaction", "xlink:href", "srcset", "background"}


class Audit(HTMLParser):
    """Everything in a fragment of HTML that could run code in a reader's browser."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in DANGEROUS_TAGS:
            self.problems.append(f"<{tag}>")
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"{tag} {name}=")
            if name in URL_ATTRIBUTES and value is not None and not url_is_safe(value):
                self.problems.append(f"{tag} {name}={value!r}")
            if name == "style" and value and not re.fullmatch(r"text-align:\s*\w+;?", value):
                self.problems.append(f"{tag} style={value!r}")

    handle_startendtag = handle_starttag


def url_is_safe(value: str) -> bool:
    """As a browser reads it: control characters and whitespace dropped, case folded."""
    cleaned = re.sub(r"[\x00-\x20\x7f]", "", html.unescape(value)).lower()
    scheme, colon, _rest = cleaned.partition(":")
    if not colon or not re.fullmatch(r"[a-z][a-z0-9+.\-]*", scheme):
        # No scheme (a browser does not percent-decode one): a relative URL on this site.
        return True
    return scheme in SAFE_SCHEMES


def problems_in(rendered: str) -> list[str]:
    audit = Audit()
    audit.feed(rendered)
    audit.close()
    # Belt and braces for what a lenient parser might miss; escaped text (&lt;script)
    # is harmless and does not match.
    if "<script" in rendered.lower():
        audit.problems.append("raw <script")
    return audit.problems


ATTACKS = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    "<img src=x onerror=alert(1)>",
    '<a href="javascript:alert(1)">x</a>',
    "<svg onload=alert(1)>",
    "<iframe src=//evil.example>",
    "<style>body{display:none}</style>",
    "[x](javascript:alert(1))",
    "[x](JaVaScRiPt:alert(1))",
    "[x]( javascript:alert(1))",
    "[x](java\tscript:alert(1))",
    "[x](&#106;avascript:alert(1))",
    "[x](&#x6A;avascript:alert(1))",
    "[x](javascript&colon;alert(1))",
    "[x](java&#x09;script:alert(1))",
    "[x](\x01javascript:alert(1))",
    "[x](vbscript:msgbox(1))",
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "![x](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
    "![x](javascript:alert(1))",
    "<javascript:alert(1)>",
    "[x][r]\n\n[r]: javascript:alert(1)",
    '[x](https://ok.example "title" onclick="alert(1)")',
    '[x](https://ok.example"onmouseover="alert(1))',
    "```html\n<script>alert(1)</script>\n```",
    "<div onclick=alert(1)>text</div>",
    '<a href="https://ok.example" onclick="alert(1)">ok</a>',
    "| a |\n|---|\n| <script>x</script> |",
    '<td style="background:url(javascript:alert(1))">x</td>',
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "<<script>script>alert(1)<</script>/script>",
    "<!--<img src=x onerror=alert(1)>-->",
    "<details open ontoggle=alert(1)>",
    "[x](%6Aavascript:alert(1))",
]


@pytest.mark.parametrize("attack", ATTACKS)
def test_attacks_render_harmless(attack: str) -> None:
    rendered = render_markdown(f"Some text.\n\n{attack}\n\nMore text.")
    assert problems_in(rendered) == [], rendered
    assert "Some text." in rendered and "More text." in rendered


def test_ordinary_markdown_survives() -> None:
    rendered = render_markdown(
        "## Heading\n\nA *quote* and **bold** with [a link](https://example.org/a?b=1).\n\n"
        "> Quoted\n\n- one\n- two\n\n| a | b |\n|:-:|---|\n| 1 | 2 |\n\n`code` and "
        "![chart](https://example.org/chart.png) and [mail](mailto:desk@example.org)"
    )
    for fragment in (
        "<h2>Heading</h2>",
        "<em>quote</em>",
        "<strong>bold</strong>",
        'href="https://example.org/a?b=1"',
        "<blockquote>",
        "<li>one</li>",
        "<table>",
        'src="https://example.org/chart.png"',
        'href="mailto:desk@example.org"',
        "<code>code</code>",
    ):
        assert fragment in rendered, (fragment, rendered)
    assert 'rel="noopener noreferrer nofollow"' in rendered
    assert problems_in(rendered) == []


def test_the_audit_catches_what_it_should() -> None:
    """The checker itself: a test that cannot fail proves nothing."""
    assert problems_in("<script>x</script>")
    assert problems_in('<a href="JAVA&#x09;SCRIPT:alert(1)">x</a>')
    assert problems_in('<img src="data:image/png;base64,AAAA">')
    assert problems_in('<a href=" \x01jAvAsCrIpT:alert(1)">x</a>')
    assert problems_in('<p onclick="x">x</p>')
    assert problems_in('<td style="background:red">x</td>')
    assert not problems_in('<a href="/articles/x">x</a><a href="https://a.example">y</a>')


FRAGMENTS = st.sampled_from(
    [
        "<",
        ">",
        "/",
        '"',
        "'",
        "=",
        "&",
        "#",
        ";",
        ":",
        "(",
        ")",
        "[",
        "]",
        "!",
        "`",
        "*",
        "\n",
        "\n\n",
        " ",
        "\t",
        "\x00",
        "\x01",
        "script",
        "SCRIPT",
        "javascript",
        "java",
        "vbscript",
        "data",
        "text/html",
        "base64,",
        "img",
        "src",
        "href",
        "onerror",
        "onload",
        "onclick",
        "alert(1)",
        "&#106;",
        "&#x6A;",
        "&#x09;",
        "&colon;",
        "%6A",
        "svg",
        "iframe",
        "style",
        "a",
        "http://x.example",
        "](",
        "<a ",
        "<img ",
        "[x](",
        "![x](",
        "]: ",
        "<!--",
        "-->",
        "```",
        "|",
        "---",
    ]
)
MARKDOWN = st.lists(FRAGMENTS | st.text(max_size=5), max_size=60).map("".join)


@settings(max_examples=400, deadline=None)
@given(MARKDOWN)
def test_rendered_html_is_always_safe(text: str) -> None:
    assert problems_in(render_markdown(text)) == []


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_hash_ignores_line_endings_only(text: str) -> None:
    text = text.replace("\r", "")  # a lone CR is a line break of its own ("\r\r\n" is two)
    assert text_sha256(text) == text_sha256(text.replace("\n", "\r\n"))
    assert text_sha256(text) == text_sha256(text.replace("\n", "\r"))
    assert normalise_text(normalise_text(text)) == normalise_text(text)
    if normalise_text(text) != normalise_text(text + "x"):
        assert text_sha256(text) != text_sha256(text + "x")


def test_article_page_serves_the_sanitised_body(client: FlaskClient) -> None:
    body = "\n\n".join(ATTACKS)
    article = make_article(body=body, price=0)
    page = client.get(f"/articles/{article.slug}").get_data(as_text=True)
    start = page.index('<div class="article-body')
    end = page.index('<section class="verifier"')
    assert problems_in(page[start:end]) == []
    # The only script on the page is the JSON-LD block (data, not code).
    assert page.count("<script") == 1 and '<script type="application/ld+json">' in page
