"""The API's documentation page serves Swagger UI from the shop's own static files."""

import re

import pytest
from django.contrib.staticfiles import finders


@pytest.mark.django_db
def test_the_api_docs_need_no_cdn(client):
    page = client.get("/api/docs/").content.decode()
    assert "cdn.jsdelivr.net" not in page and "unpkg.com" not in page
    scripts = re.findall(r'src="([^"]+\.js)"', page)
    assert any("swagger-ui-bundle" in src for src in scripts)
    for src in scripts:
        path = src.split("/static/", 1)[1]
        assert finders.find(path), f"{src} is not one of the shop's static files"
