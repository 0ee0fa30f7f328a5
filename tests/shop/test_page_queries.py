"""What a product page and the home page cost in queries: a fixed number, whatever the
number of cards in their strips and grids (no query per card)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from recommendations.services import serving
from tests.recommendations.blend_support import (  # noqa: F401 (fixture)
    blend_environment,
    embed,
    event,
    train_model,
)

pytestmark = pytest.mark.django_db


def add_dresses(product_factory, category, n, start=0):
    products = []
    for i in range(start, start + n):
        p = product_factory(category=category, title=f"Dress {i}")
        embed(p, [1.0, 0.1 * (i + 1), 0.0, 0.0])
        products.append(p)
    return products


def queries_of(client, url):
    # Warm: the session, the view (recorded once in its window), the model, the snapshot.
    client.get(url)
    client.get(url)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return [q["sql"] for q in queries.captured_queries]


@pytest.fixture
def shop(settings, product_factory, category_factory):
    # The periods of serving, not the tests' zero: what a page costs once warm.
    settings.RECOMMENDATIONS_POPULAR_CACHE_SECONDS = 600
    settings.RECOMMENDATIONS_RELOAD_CHECK_SECONDS = 600
    cat = category_factory(name="Dresses", slug="dresses")
    anchor = product_factory(category=cat, title="Red dress")
    embed(anchor, [1.0, 0.0, 0.0, 0.0])
    return anchor, cat


def test_the_product_page_needs_no_query_per_card(client, shop, product_factory):
    anchor, cat = shop
    dresses = add_dresses(product_factory, cat, 3)
    for p in dresses:
        event(p, session_key="someone")
    train_model()
    few = queries_of(client, anchor.get_absolute_url())
    add_dresses(product_factory, cat, 9, start=3)
    serving.clear_cache()  # as the snapshot's period ends
    html = client.get(anchor.get_absolute_url()).content.decode()
    assert html.count("?from=similar-widget") >= 2 * 12  # a full strip this time
    many = queries_of(client, anchor.get_absolute_url())
    assert len(many) == len(few), "\n".join(s[:150] for s in few + ["----"] + many)
    # The shopper's events are read once; the catalogue's allowed products and the
    # popularity ranking come from the process; the strip's products in one query.
    reads = [s for s in many if "recommendations_event" in s and "EXTRACT" in s]
    assert len(reads) == 1, reads
    snapshot = 'SELECT "shop_product"."id" AS "pk"'
    assert not any(s.startswith(snapshot) or "SUM(LEAST" in s for s in many), many
    products = [s for s in many if s.startswith('SELECT "shop_product"."id", "shop_product"')]
    assert len(products) == 2, products  # the page's product, the strip's
    assert len(many) <= 14, many


def test_the_home_page_needs_no_query_per_card(client, shop, product_factory):
    anchor, cat = shop
    add_dresses(product_factory, cat, 2)
    client.get(anchor.get_absolute_url())  # a session with a history
    few = queries_of(client, reverse("shop:home"))
    add_dresses(product_factory, cat, 14, start=2)
    serving.clear_cache()
    many = queries_of(client, reverse("shop:home"))
    assert len(many) == len(few), "\n".join(s[:150] for s in few + ["----"] + many)
    assert len(many) <= 14, many
