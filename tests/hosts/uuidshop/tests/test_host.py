"""Lookalike installed from its wheel into a shop with UUID keys, photos in a related model,
several departments per item and prices in cents, configured from docs/install.md alone."""

import io
import uuid
from decimal import Decimal

import numpy as np
import pytest
from catalog.models import Item
from django.core.checks import run_checks
from django.core.management import call_command
from django.test import Client

from tests.conftest import photo

pytestmark = pytest.mark.django_db


def reindex():
    out = io.StringIO()
    call_command("reindex", "--stale", stdout=out)
    return out.getvalue()


def similar(client, item, **params):
    response = client.get(f"/api/products/{item.pk}/similar/", {"k": 20, **params})
    assert response.status_code == 200, response.content
    return [uuid.UUID(r["id"]) for r in response.json()["results"]], response.json()["results"]


def test_the_plugin_comes_from_the_wheel_not_a_source_tree():
    import lookalike
    import visualsearch

    assert "site-packages" in lookalike.__file__ and "site-packages" in visualsearch.__file__


def test_checks_pass_and_a_wrong_adapter_names_the_setting(settings):
    assert [m for m in run_checks() if m.level >= 30] == []
    settings.LOOKALIKE_CATALOGUE_ADAPTER = "catalog.adapters.NoSuchAdapter"
    errors = [m for m in run_checks() if m.id and m.id.startswith("lookalike.")]
    assert errors and "LOOKALIKE_CATALOGUE_ADAPTER" in errors[0].msg


def test_reindex_find_similar_with_filters_and_photo_search(shop):
    from visualsearch.indexing import index_status
    from visualsearch.services.vectors import load_vectors

    # A UUID key on the command line, as the adapter parses it.
    out = io.StringIO()
    call_command("reindex", "--ids", str(shop["items"][0].pk), stdout=out)
    assert "1 embedded, 0 failed" in out.getvalue()
    output = reindex()
    # The eight other listed items and the unlisted one have photos.
    assert output.startswith("9 embedded, 0 failed")
    status = index_status()
    assert (status["indexed"], status["no_image"], status["failed"]) == (10, 1, 0)

    client = Client()
    anchor = shop["items"][0]
    ids, cards = similar(client, anchor)
    listed = {i.pk for i in shop["items"]} - {anchor.pk}
    assert set(ids) == listed  # every other listed photographed item; never the unlisted one
    # Exactly the cosine order of the stored vectors.
    vectors = load_vectors([anchor.pk, *ids])
    scores = [float(vectors[anchor.pk] @ vectors[i]) for i in ids]
    assert scores == sorted(scores, reverse=True)
    assert cards[0]["currency"] == "USD" and cards[0]["image_url"].startswith("http://testserver/")

    shoes = shop["shoes"]
    ids, _ = similar(client, anchor, category=shoes.pk)
    in_shoes = set(shoes.items.filter(listed=True).values_list("pk", flat=True)) - {anchor.pk}
    assert set(ids) == in_shoes

    ids, cards = similar(client, anchor, min_price="20.00", max_price="35.00")
    expected = {i.pk for i in shop["items"] if 2000 <= i.price_cents <= 3500} - {anchor.pk}
    assert set(ids) == expected
    assert all(Decimal("20") <= Decimal(c["price"]) <= Decimal("35") for c in cards)
    # Cents become exact prices (an integer division would have made 20.99 a 20).
    cents = {str(i.pk): i.price_cents for i in shop["items"]}
    assert cards and all(Decimal(c["price"]) * 100 == cents[str(c["id"])] for c in cards)

    ids, _ = similar(client, anchor, in_stock="true")
    assert set(ids) == {i.pk for i in shop["items"] if i.quantity > 0} - {anchor.pk}

    # Search by photo: a shopper's copy of item 4's photo finds item 4 first.
    target = shop["items"][4]
    upload = io.BytesIO(photo(4))
    upload.name = "mine.png"
    response = client.post("/api/search/image/", {"image": upload, "k": 3})
    assert response.status_code == 200, response.content
    assert response.json()["results"][0]["id"] == str(target.pk)

    page = client.get(f"/visual/similar/{anchor.pk}/")
    assert page.status_code == 200 and "Item 1" in page.content.decode()
    assert client.get("/visual/similar/not-a-uuid/").status_code == 404
    assert client.get(f"/api/products/{uuid.uuid4()}/similar/").status_code == 404
    assert client.get(f"/visual/similar/{shop['hidden'].pk}/").status_code == 404


def test_a_new_first_photo_makes_the_vector_stale(shop, settings):
    from catalog.models import ItemPhoto
    from django.core.files.base import ContentFile

    from visualsearch.indexing import stale_products

    reindex()
    item = shop["items"][2]
    assert stale_products() == []
    ItemPhoto.objects.create(item=item, position=0, file=ContentFile(photo(40), name="new.png"))
    ItemPhoto.objects.filter(item=item).exclude(file__contains="new").update(position=5)
    assert stale_products() == [item.pk]


def test_events_training_and_both_widgets(shop, settings):
    from recommendations.models import Event, RecommenderModel

    reindex()
    items = shop["items"]
    rng = np.random.default_rng(0)
    for _ in range(12):
        shopper = Client()
        for i in rng.choice(len(items), size=4, replace=False):
            assert shopper.get(items[i].get_absolute_url()).status_code == 200
    # A new browser's first page starts its session and counts once the browser comes back
    # (its UUID key held in the session in the meantime): four views count per shopper.
    assert Event.objects.filter(kind="view").count() == 48
    keys = Event.objects.values_list("product_id", flat=True)
    assert all(isinstance(pk, uuid.UUID) for pk in keys)

    call_command("train_recommender", "--factors", "4", "--iterations", "3", stdout=io.StringIO())
    model = RecommenderModel.objects.get(is_active=True)
    assert model.n_items == Event.objects.values("product").distinct().count() >= 6

    shopper = Client()
    html = shopper.get(items[3].get_absolute_url()).content.decode()
    assert 'data-widget="similar-items"' in html
    linked = {str(i.pk) for i in items if f"/items/{i.pk}/?from=similar-widget" in html}
    assert linked and str(items[3].pk) not in linked
    assert str(shop["hidden"].pk) not in html
    shopper.get(
        items[5].get_absolute_url() + "?from=similar-widget",
        HTTP_REFERER=f"http://testserver{items[3].get_absolute_url()}",
    )
    assert Event.objects.filter(kind="similar_click", product=items[5]).exists()

    home = shopper.get("/").content.decode()
    assert 'data-widget="for-you"' in home
    assert any(f"/items/{i.pk}/?from=for-you" in home for i in items)
    Item.objects.filter(pk=items[0].pk).update(listed=False)
    assert f"/items/{items[0].pk}/" not in Client().get("/").content.decode()


def test_the_catalogue_projection_learns_from_departments_and_uuid_pairs(shop):
    """The default encoder's projection, fitted on this catalogue: main departments as
    labels, shopper-style photos of four items (recorded by their UUID keys)."""
    from visualsearch.encoders import get_encoder

    out = io.StringIO()
    call_command("reindex", "--all", "--fit-projection", "--pairs", "4", stdout=out)
    projection = get_encoder().projection
    assert projection is not None and len(projection.pair_ids) == 4
    assert all(isinstance(pk, uuid.UUID) for pk in projection.pair_ids)
    target = shop["items"][7]
    upload = io.BytesIO(photo(7))
    upload.name = "mine.png"
    response = Client().post("/api/search/image/", {"image": upload, "k": 3})
    assert response.json()["results"][0]["id"] == str(target.pk)
