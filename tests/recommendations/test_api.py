"""GET /api/recommendations/ and the personalised /api/products/{id}/similar/?profile=."""

from decimal import Decimal

import pytest
from django.urls import reverse

from recommendations.models import Event
from tests.recommendations.blend_support import (  # noqa: F401 (fixture)
    blend_environment,
    embed,
    event,
)


@pytest.fixture
def catalogue(product_factory, category_factory):
    cat = category_factory(name="Knitwear", slug="knitwear")
    anchor = product_factory(category=cat, title="Grey jumper")
    embed(anchor, [1.0, 0.0, 0.0, 0.0])
    others = []
    for i in range(6):
        p = product_factory(category=cat, title=f"Jumper {i}")
        embed(p, [1.0, 0.2 * (i + 1), 0.0, 0.0])
        others.append(p)
    return anchor, others


@pytest.mark.django_db
def test_for_you_answers_cards_with_reasons(client, catalogue):
    anchor, others = catalogue
    response = client.get(reverse("recommendations-for-you"), {"k": 3})
    assert response.status_code == 200
    body = response.json()
    assert body["profile"] == "default"
    assert len(body["results"]) == 3
    card = body["results"][0]
    assert set(card) == {
        "id",
        "title",
        "price",
        "category",
        "in_stock",
        "currency",
        "image_url",
        "url",
        "score",
        "reason",
        "components",
    }
    assert card["reason"] and card["price"] == "19.99" and card["image_url"].startswith("http")
    assert card["score"] == pytest.approx(sum(card["components"].values()), abs=1e-5)


@pytest.mark.django_db
def test_for_you_follows_the_session_of_the_request(client, catalogue):
    anchor, others = catalogue
    # The first, cookie-less visit starts the session and holds its view there ...
    client.get(anchor.get_absolute_url())
    assert not Event.objects.exists()
    # ... which the next request with the cookie records, at its own time, and follows.
    ids = [r["id"] for r in client.get(reverse("recommendations-for-you")).json()["results"]]
    assert Event.objects.get().product == anchor
    assert anchor.pk not in ids  # the shopper's current product is left out
    assert ids[0] == others[0].pk
    client.get(reverse("recommendations-for-you"))
    assert Event.objects.count() == 1  # recorded once


@pytest.mark.django_db
def test_similar_is_blended_and_personalised(client, catalogue):
    anchor, others = catalogue
    event(others[1], "purchase", session_key="x")  # somebody else's purchase: popular
    url = reverse("visualsearch-product-similar", args=[anchor.pk])
    body = client.get(url, {"k": 4, "profile": "default"}).json()
    ids = [r["id"] for r in body["results"]]
    assert anchor.pk not in ids and len(ids) == 4
    assert body["results"][0]["reason"] == "Looks similar"
    inactive = others[0]
    inactive.is_active = False
    inactive.save()
    inactive_url = reverse("visualsearch-product-similar", args=[inactive.pk])
    assert client.get(inactive_url, {"profile": "default"}).status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize(
    "params, field, message",
    [
        ({"k": 0}, "k", "greater than or equal to 1"),
        ({"k": 51}, "k", "less than or equal to 50"),
        ({"k": "ten"}, "k", "valid integer"),
        ({"profile": "summer"}, "profile", "Unknown blend profile “summer”"),
        # A long name comes back cut short, never echoed whole.
        ({"profile": "x" * 10_000}, "profile", f"Unknown blend profile “{'x' * 59}…”"),
    ],
)
def test_bad_parameters_are_400s_that_say_why(client, catalogue, params, field, message):
    anchor, _ = catalogue
    for url in (
        reverse("recommendations-for-you"),
        reverse("visualsearch-product-similar", args=[anchor.pk]),
    ):
        response = client.get(url, {"profile": "default", **params})
        assert response.status_code == 400
        assert message in response.json()[field][0]


@pytest.mark.django_db
def test_endpoints_are_in_the_openapi_schema(client):
    schema = client.get(reverse("schema"), {"format": "json"}).json()
    assert "/api/recommendations/" in schema["paths"]
    similar = schema["paths"]["/api/products/{id}/similar/"]["get"]
    names = {p["name"] for p in similar["parameters"]}
    assert {"k", "profile"} <= names and "400" in similar["responses"]


@pytest.mark.django_db
def test_similar_with_a_profile_honours_the_filters(client, catalogue, product_factory):
    anchor, others = catalogue
    knitwear = anchor.category
    elsewhere = product_factory(title="Scarf", price=Decimal("9.00"))  # another category
    embed(elsewhere, [1.0, 0.05, 0.0, 0.0])  # looks most like the anchor
    dear = product_factory(category=knitwear, title="Cashmere", price=Decimal("90.00"))
    embed(dear, [1.0, 0.1, 0.0, 0.0])
    sold_out = product_factory(category=knitwear, title="Sold out", stock=0)
    embed(sold_out, [1.0, 0.15, 0.0, 0.0])
    url = reverse("visualsearch-product-similar", args=[anchor.pk])

    unfiltered = {r["id"] for r in client.get(url, {"profile": "", "k": 20}).json()["results"]}
    assert {elsewhere.pk, dear.pk} <= unfiltered  # the default profile ("" names it)

    filters = {"category": knitwear.pk, "max_price": "50", "in_stock": "true", "k": 20}
    body = client.get(url, {"profile": "default", **filters}).json()
    ids = {r["id"] for r in body["results"]}
    assert ids and ids <= {p.pk for p in others}
    assert not ids & {elsewhere.pk, dear.pk, sold_out.pk}
    # Nothing passes an empty price range, in either mode.
    empty = {"min_price": "50", "max_price": "10"}
    assert client.get(url, {"profile": "default", **empty}).json()["results"] == []


@pytest.mark.django_db
def test_similar_answers_one_of_two_documented_shapes(client, catalogue):
    anchor, _ = catalogue
    url = reverse("visualsearch-product-similar", args=[anchor.pk])
    assert set(client.get(url, {"profile": "default"}).json()) == {"profile", "results"}
    schema = client.get(reverse("schema"), {"format": "json"}).json()
    ok = schema["paths"]["/api/products/{id}/similar/"]["get"]["responses"]["200"]
    assert ok["content"]["application/json"]["schema"]["$ref"].endswith("/SimilarProducts")
    shapes = schema["components"]["schemas"]["SimilarProducts"]["oneOf"]
    assert [s["$ref"].rsplit("/", 1)[1] for s in shapes] == ["SearchResults", "Recommendations"]
    # Exactly one shape matches a body: the visual one has nothing but its results.
    assert schema["components"]["schemas"]["SearchResults"]["additionalProperties"] is False
    # The profile names are the ones there are; k has one limit for both modes.
    params = {
        p["name"]: p["schema"]
        for p in schema["paths"]["/api/products/{id}/similar/"]["get"]["parameters"]
    }
    assert params["profile"]["enum"] == ["default", ""]
    assert params["k"]["maximum"] == 50
