"""Property: Markdown rendering never lets script through, whatever the input."""

from __future__ import annotations

import html
import re

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from dispatch_pay.catalog.markdown import render_markdown
from tests.support.html import parse_page as scan

SAFE_SCHEMES = {"http", "https", "mailto"}
DANGEROUS_TAGS = {
    "script", "iframe", "object", "embed", "svg", "math", "style", "link", "meta", "base",
    "form", "input", "button", "frame", "frameset", "applet", "template", "noscript",
}  # fmt: skip
URL_ATTRIBUTES = {"href", "src", "action", "formaction", "xlink:href", "background", "srcset"}


def mixed_case(word: str) -> st.SearchStrategy[str]:
    return st.lists(st.booleans(), min_size=len(word), max_size=len(word)).map(
        lambda flags: "".join(c.upper() if f else c for c, f in zip(word, flags, strict=True))
    )


def encoded(word: str) -> st.SearchStrategy[str]:
    """The word with some characters as HTML entities, percent escapes or hidden bytes."""
    forms = st.sampled_from(["plain", "dec", "hex", "pct", "tab", "nl", "nul", "zw"])
    return st.lists(forms, min_size=len(word), max_size=len(word)).map(
        lambda picks: "".join(_encode(c, p) for c, p in zip(word, picks, strict=True))
    )


def _encode(char: str, how: str) -> str:
    return {
        "plain": char,
        "dec": f"&#{ord(char)};",
        "hex": f"&#x{ord(char):x};",
        "pct": f"%{ord(char):02X}",
        "tab": char + "\t",
        "nl": char + "\n",
        "nul": char + "\x00",
        "zw": char + "\u200b",
    }[how]


scheme = st.sampled_from(["javascript", "vbscript", "data", "livescript"]).flatmap(
    lambda s: st.one_of(mixed_case(s), encoded(s))
)
script_url = st.tuples(scheme, st.sampled_from([":", "&#58;", "&colon;", "%3A"])).map(
    lambda t: f"{t[0]}{t[1]}alert(1)"
)
tag = st.sampled_from(sorted(DANGEROUS_TAGS | {"img", "a", "div", "p", "span"})).flatmap(mixed_case)
handler = st.sampled_from(["onerror", "onload", "onclick", "onmouseover", "onfocus"]).flatmap(
    mixed_case
)
fragment = st.one_of(
    st.builds(lambda t: f"<{t}>alert(1)</{t}>", tag),
    st.builds(lambda t, h: f"<{t} {h}=alert(1)>", tag, handler),
    st.builds(lambda t, h: f'<{t} src=x {h}="alert(1)" />', tag, handler),
    st.builds(lambda u: f"[click]({u})", script_url),
    st.builds(lambda u: f"![img]({u})", script_url),
    st.builds(lambda u: f"<{u}>", script_url),
    st.builds(lambda u: f"[ref]\n\n[ref]: {u}", script_url),
    st.builds(lambda u: f'<a href="{u}">x</a>', script_url),
    st.builds(lambda u: f'[x]({u} "t")', script_url),
    st.sampled_from(["\n\n", "`", "```\n", "> ", "* ", "| a |\n|---|\n", "<!--", "-->", "]]>"]),
    st.text(max_size=20),
)
markdown = st.lists(fragment, max_size=12).map("".join)


def scheme_of(url: str) -> str | None:
    """The scheme a browser would see: entities decoded, whitespace and controls dropped."""
    cleaned = html.unescape(url)
    cleaned = re.sub(r"[\x00-\x20\x7f\u200b-\u200d\ufeff]", "", cleaned)
    # Browsers do not percent-decode a scheme: "java%73cript:" is a relative path.
    match = re.match(r"^([a-zA-Z][a-zA-Z0-9+.\-]*):", cleaned)
    return match.group(1).lower() if match else None


def assert_no_script(rendered: str) -> None:
    page = scan(rendered)
    for name, attrs in page.tags:
        assert name not in DANGEROUS_TAGS, rendered
        for attr, value in attrs.items():
            assert not attr.lower().startswith("on"), rendered
            if attr.lower() in URL_ATTRIBUTES and value:
                found = scheme_of(value)
                assert found is None or found in SAFE_SCHEMES, (value, rendered)
            assert attr.lower() != "style" or "url(" not in (value or "").lower(), rendered


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(markdown)
@example("<script>alert(1)</script>")
@example("<ScRiPt>alert(1)</sCrIpT>")
@example("[x](javascript:alert(1))")
@example("[x](JAVASCRIPT:alert(1))")
@example("[x](&#106;avascript:alert(1))")
@example("[x](java&#x09;script:alert(1))")
@example("[x](vbscript:msgbox(1))")
@example("![x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)")
@example("<img src=x onerror=alert(1)>")
@example('<a href="javascript:alert(1)">x</a>')
@example("<javascript:alert(1)>")
@example("[a]: javascript:alert(1)\n\n[a]")
def test_markdown_never_lets_script_through(text: str) -> None:
    assert_no_script(render_markdown(text))


def test_the_checker_catches_what_it_should() -> None:
    """The property's own oracle: each of these must be flagged."""
    for bad in (
        "<script>alert(1)</script>",
        '<img src="x" onerror="alert(1)">',
        '<a href="jav&#x61;script:alert(1)">x</a>',
        '<a href=" java\tscript:alert(1)">x</a>',
        '<img src="data:text/html,x">',
    ):
        try:
            assert_no_script(bad)
        except AssertionError:
            continue
        raise AssertionError(f"not flagged: {bad}")


def test_safe_markdown_still_renders() -> None:
    rendered = render_markdown("**bold** [link](https://example.org) ![i](https://x.org/i.png)")
    assert "<strong>bold</strong>" in rendered
    assert 'href="https://example.org"' in rendered and 'src="https://x.org/i.png"' in rendered
