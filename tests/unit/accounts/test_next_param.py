"""A `next` parameter only ever leads to a path on this site; never a 500 (issue 11.11).

`next` is read from the query string as well as the form, on GET and POST, by the login
and sign-up pages; anything that is not a plain path here (another host, `//`,
backslashes, control characters) is replaced by `/`.
"""

from __future__ import annotations

import secrets

import pytest
from flask.testing import FlaskClient

from dispatch_pay.urls import local_path
from tests.support.factories import PASSWORD, make_user
from tests.support.web import csrf_token_from

HOSTILE = [
    "/\r\nSet-Cookie: x=1",
    "/\rx",
    "/\nx",
    "/\x00",
    "/\x7f",
    "/\x85/evil.example",
    "/\u2028x",
    "/\t/evil.example",
    "//evil.example",
    "/\\evil.example",
    "\\/evil.example",
    "https://evil.example/",
    "javascript:alert(1)",
    "",
]


@pytest.mark.parametrize("target", HOSTILE)
def test_local_path_replaces_anything_but_a_plain_path(target: str) -> None:
    assert local_path(target) == "/"


@pytest.mark.parametrize(
    "target", ["/", "/articles/a-b", "/articles/a-b?from=login#top", "/wallet?buy=x&amount=50"]
)
def test_local_path_keeps_a_path_on_this_site(target: str) -> None:
    assert local_path(target) == target


def _post(client: FlaskClient, path: str, raw_query: str) -> tuple[int, str]:
    email = f"n-{secrets.token_hex(4)}@example.com"
    if path == "/login":
        make_user(email)
    token = csrf_token_from(client, path)
    response = client.post(
        f"{path}?next={raw_query}",
        data={"email": email, "password": PASSWORD, "csrf_token": token},
    )
    return response.status_code, response.headers.get("Location", "")


@pytest.mark.parametrize("path", ["/login", "/signup"])
@pytest.mark.parametrize(
    "raw_query",
    ["/%0D%0ASet-Cookie:%20x=1", "/%0Ax", "/%7F", "/%09/evil.example", "/%E2%80%A8x", "%2F%2Fevil"],
)
def test_control_characters_in_next_on_the_query_string_lead_home(
    client: FlaskClient, path: str, raw_query: str
) -> None:
    status, location = _post(client, path, raw_query)
    assert (status, location) == (302, "/")


@pytest.mark.parametrize("path", ["/login", "/signup"])
def test_a_nul_in_next_is_refused_like_any_nul_never_a_500(client: FlaskClient, path: str) -> None:
    status, location = _post(client, path, "/%00")
    assert (status, location) == (422, "")  # the app's guard against text it cannot store


@pytest.mark.parametrize("path", ["/login", "/signup"])
def test_a_hostile_next_on_a_get_renders_the_form_with_home(client: FlaskClient, path: str) -> None:
    response = client.get(f"{path}?next=/%0D%0ASet-Cookie:%20x=1")
    assert response.status_code == 200
    assert 'name="next" value="/"' in response.get_data(as_text=True)
