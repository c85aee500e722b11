from __future__ import annotations

from flask.testing import FlaskClient

from tests.support.factories import bearer, grant, make_article, make_token, make_user


def test_front_page_lists_published_teasers(client: FlaskClient) -> None:
    make_article(title="Published one", price=39)
    make_article(title="Draft one", published=False)
    html = client.get("/").get_data(as_text=True)
    assert "Published one" in html
    assert "$0.39" in html
    assert "Draft one" not in html


def test_entitled_reader_gets_full_text(client: FlaskClient) -> None:
    article = make_article(body="Secret body words")
    slug = article.slug
    reader = make_user()
    token = make_token(reader)
    assert client.get(f"/api/v1/articles/{slug}", headers=bearer(token)).status_code == 402
    grant(reader, article)
    response = client.get(f"/api/v1/articles/{slug}", headers=bearer(token))
    assert response.status_code == 200
    assert "Secret body words" in response.json["body_html"]
