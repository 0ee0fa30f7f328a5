"""The visual-search API: similar products, search by photo, throttling and the schema."""

import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from tests.factories import failed_photo
from tests.visualsearch import corpus
from tests.windows import steady_window

pytestmark = pytest.mark.django_db

IMAGE_URL = "/api/search/image/"
RESULT_KEYS = {"id", "title", "price", "category", "in_stock", "image_url", "url", "score"}
RESULT_KEYS |= {"currency"}


@pytest.fixture(autouse=True)
def _fresh_throttle_cache():
    # Throttle histories live in the cache; each test starts without any.
    cache.clear()
    yield
    cache.clear()


def similar_url(pk):
    return f"/api/products/{pk}/similar/"


def image_of(product):
    with product.image.open("rb") as fh:
        return SimpleUploadedFile("query.png", fh.read(), content_type="image/png")


def test_similar_endpoint(client, catalogue):
    product = catalogue[0]
    response = client.get(similar_url(product.pk), {"k": 5})
    assert response.status_code == 200
    results = response.json()["results"]
    assert len(results) == 5
    assert set(results[0]) == RESULT_KEYS
    assert product.pk not in [r["id"] for r in results]
    first = results[0]
    assert first["url"].startswith("http://testserver/p/")
    assert first["image_url"].startswith("http://testserver/media/products/")
    assert isinstance(first["score"], float) and isinstance(first["in_stock"], bool)
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True)


def test_similar_endpoint_filters(client, catalogue):
    product = catalogue[0]
    response = client.get(
        similar_url(product.pk),
        {"category": product.category_id, "in_stock": "true", "max_price": "30"},
    )
    assert response.status_code == 200
    by_pk = {p.pk: p for p in catalogue}
    results = response.json()["results"]
    assert results
    for r in results:
        p = by_pk[r["id"]]
        assert p.category_id == product.category_id and p.stock > 0 and p.price <= 30
        assert r["category"] == str(p.category)


@pytest.mark.parametrize(
    "params, field",
    [
        ({"k": 0}, "k"),
        ({"k": 101}, "k"),
        ({"k": "many"}, "k"),
        ({"min_price": "-1"}, "min_price"),
        ({"category": "shoes"}, "category"),
        ({"in_stock": "perhaps"}, "in_stock"),
        # Exactly as the schema says: digits, true/false, plain decimals, no empty values.
        ({"k": "5.0"}, "k"),
        ({"k": ""}, "k"),
        ({"in_stock": "yes"}, "in_stock"),
        ({"in_stock": ""}, "in_stock"),
        ({"min_price": "1e2"}, "min_price"),
        ({"max_price": ""}, "max_price"),
        ({"category": ""}, "category"),
        # ASCII digits only, as the schema's patterns say (Python's \d takes others too).
        ({"k": "\uff15"}, "k"),
        ({"min_price": "\uff11\uff12"}, "min_price"),
        ({"category": "\u0661"}, "category"),
    ],
)
def test_similar_endpoint_validates_query_parameters(client, catalogue, params, field):
    response = client.get(similar_url(catalogue[0].pk), params)
    assert response.status_code == 400
    assert field in response.json()


@pytest.mark.parametrize(
    "adapter, key", [(None, 999999), ("TextCategoryKeysAdapter", "nonexistent")]
)
def test_a_category_no_category_has_finds_nothing(settings, client, catalogue, adapter, key):
    """Not an error, as an empty price range is not: the schema says what a key looks like,
    not which categories exist, and Schemathesis holds the API to answering every request
    the schema calls valid. Integer and text keys alike."""
    if adapter is not None:
        settings.LOOKALIKE_CATALOGUE_ADAPTER = f"tests.catalogue_adapters.{adapter}"
    response = client.get(similar_url(catalogue[0].pk), {"category": key})
    assert response.status_code == 200 and response.json() == {"results": []}


def test_an_empty_price_range_finds_nothing(client, catalogue):
    # Not an error: the schema cannot relate two parameters, and nothing is in the range.
    response = client.get(similar_url(catalogue[0].pk), {"min_price": "20", "max_price": "10"})
    assert response.status_code == 200 and response.json() == {"results": []}


def test_leading_zeros_do_not_count_as_a_price_s_digits(client, catalogue):
    padded = client.get(similar_url(catalogue[0].pk), {"max_price": "000000000999.50"})
    plain = client.get(similar_url(catalogue[0].pk), {"max_price": "999.50"})
    assert padded.status_code == plain.status_code == 200
    assert padded.json() == plain.json() and plain.json()["results"]


def test_errors_under_the_api_are_json(client, catalogue):
    for response in (
        client.get(similar_url("1.5")),  # not an integer key
        client.get(similar_url("abc")),
        client.get("/api/nothing/here/"),
    ):
        assert response.status_code == 404 and set(response.json()) == {"detail"}
    response = client.delete(similar_url(catalogue[0].pk))
    assert response.status_code == 405 and set(response.json()) == {"detail"}


def test_a_key_with_dots_reaches_the_api():
    """A text SKU may hold dots: the route takes every key without a slash."""
    from django.urls import resolve

    match = resolve("/api/products/FM-0000.xl/similar/")
    assert match.url_name == "visualsearch-product-similar" and match.kwargs == {"id": "FM-0000.xl"}


def test_an_unhandled_error_of_the_api_is_a_json_500(catalogue, monkeypatch, settings):
    """With DEBUG off, as in production, an error nothing expected still answers in JSON
    under the API (and with Django's page elsewhere); the traceback is logged, not sent."""
    from django.test import Client

    from visualsearch.api import views

    def broken(*args, **kwargs):
        raise RuntimeError("secret internals")

    settings.DEBUG = False
    monkeypatch.setattr(views.search, "hydrate", broken)
    client = Client(raise_request_exception=False)
    response = client.get(similar_url(catalogue[0].pk))
    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    assert set(response.json()) == {"detail"} and "secret" not in response.content.decode()
    monkeypatch.setattr("shop.views.get_object_or_404", broken)
    page = client.get(f"/p/{catalogue[0].pk}/")
    assert page.status_code == 500 and "application/json" not in page["Content-Type"]


def test_requests_django_refuses_before_any_view_get_a_json_400_under_the_api(catalogue, settings):
    """More parameters than DATA_UPLOAD_MAX_NUMBER_FIELDS: Django refuses the request
    before the view (handler400); under the API the answer is JSON with a message."""
    from django.test import Client

    settings.DEBUG = False
    client = Client(raise_request_exception=False)
    many = "&".join(f"a{i}=1" for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1))
    for url in (similar_url(catalogue[0].pk), "/api/recommendations/", "/api/schema/"):
        response = client.get(f"{url}?{many}")
        assert response.status_code == 400 and response["Content-Type"] == "application/json"
        assert response.json() == {"detail": "The request has too many parameters."}
    # Photo search takes its parameters in the body: the message is about the address.
    response = client.post(f"/api/search/image/?{many}", {"image": b""})
    assert response.status_code == 400
    assert response.json() == {"detail": "The request has too many parameters."}
    page = client.get(f"/p/{catalogue[0].pk}/?{many}")
    assert page.status_code == 400 and "application/json" not in page["Content-Type"]


def test_similar_endpoint_unknown_inactive_and_not_indexed(client, catalogue, product_factory):
    hidden = product_factory(is_active=False)
    first = catalogue[0].pk
    # Other spellings of an existing key ("+1", "01", full-width digits) are not that key.
    spellings = (f"+{first}", f"0{first}", "".join(chr(0xFF10 + int(d)) for d in str(first)))
    for key in (999999, 0, -1, "abc", 10**30, hidden.pk, *spellings):
        response = client.get(similar_url(key))
        # One message for every missing product, whatever its key looked like.
        assert response.status_code == 404 and response.json() == {"detail": "No such product."}
    fresh = product_factory()
    response = client.get(similar_url(fresh.pk))
    assert response.status_code == 409
    assert response.json()["code"] == "not_indexed"
    assert "not been indexed yet" in response.json()["detail"]


def test_a_product_that_will_never_be_indexed_says_why(client, catalogue, product_factory):
    """Not "try again later" for a product without a photo, or one whose photo failed."""
    faceless = product_factory(image="")
    response = client.get(similar_url(faceless.pk))
    assert response.status_code == 409
    assert response.json() == {
        "detail": "This product has no photo, so it has no look-alikes.",
        "code": "no_image",
    }
    broken = product_factory()
    failed_photo(broken)
    body = client.get(similar_url(broken.pk)).json()
    assert body["code"] == "image_failed" and "could not be analysed" in body["detail"]
    assert "identify" not in body["detail"]  # the reason is for the shop's staff


def test_image_search_finds_the_product(client, catalogue):
    target = catalogue[7]
    response = client.post(IMAGE_URL, {"image": image_of(target), "k": 3})
    assert response.status_code == 200
    results = response.json()["results"]
    assert len(results) == 3 and results[0]["id"] == target.pk
    assert results[0]["score"] == pytest.approx(1.0, abs=1e-3)


def test_image_search_with_box_and_filters(client, catalogue):
    target = catalogue[7]
    response = client.post(
        IMAGE_URL,
        {"image": image_of(target), "box": "0,0,20,20", "min_price": "20", "in_stock": "true"},
    )
    assert response.status_code == 200
    by_pk = {p.pk: p for p in catalogue}
    for r in response.json()["results"]:
        assert by_pk[r["id"]].price >= 20 and by_pk[r["id"]].stock > 0


def test_image_search_turns_a_photo_on_its_side(client, catalogue):
    """``turn`` (degrees clockwise) puts a photo saved sideways the right way up; the
    regions and ``box`` are in pixels of the turned photo."""
    import io

    from PIL import Image

    target = catalogue[7]
    with target.image.open("rb") as fh:
        sideways = Image.open(io.BytesIO(fh.read())).convert("RGB").rotate(-90, expand=True)
    buf = io.BytesIO()
    sideways.save(buf, format="PNG")

    def search(**fields):
        upload = SimpleUploadedFile("side.png", buf.getvalue(), content_type="image/png")
        return client.post(IMAGE_URL, {"image": upload, **fields})

    answer = search(turn="270")
    assert answer.status_code == 200 and answer.json()["results"][0]["id"] == target.pk
    refused = search(turn="45")
    assert refused.status_code == 400 and set(refused.json()) == {"turn"}
    assert search(turn="").status_code == 200  # empty, as a page sends it: no turn


@pytest.mark.parametrize("case", sorted(corpus.BAD_UPLOADS))
def test_image_search_refuses_bad_uploads(client, pixel_encoder, case):
    make, name, _code, fragment = corpus.BAD_UPLOADS[case]
    response = client.post(IMAGE_URL, {"image": SimpleUploadedFile(name, make())})
    assert response.status_code == 400
    [message] = response.json()["image"]
    assert fragment in message


@pytest.mark.parametrize(
    "data, field, fragment",
    [
        ({"box": "0,0,100,10"}, "box", "not a rectangle inside the photo"),
        ({"box": "0,0"}, "box", "four whole numbers"),
        ({"k": 0}, "k", ""),
        ({"k": 101}, "k", ""),
        ({"k": ""}, "k", "valid integer"),
        ({"min_price": ""}, "min_price", "like 12 or 12.50"),
        ({"min_price": "-1"}, "min_price", "cannot be below zero"),
        ({"max_price": "0.001"}, "max_price", "no more than 2 decimal places"),
        ({"max_price": "123456789"}, "max_price", "no more than 8 digits before the decimal"),
        ({"max_price": "1e2"}, "max_price", "like 12 or 12.50"),
        ({"in_stock": "on"}, "in_stock", "valid boolean"),
    ],
)
def test_image_search_refuses_bad_parameters(client, pixel_encoder, data, field, fragment):
    response = client.post(IMAGE_URL, {"image": SimpleUploadedFile("p.png", corpus.png()), **data})
    assert response.status_code == 400
    assert fragment in response.json()[field][0]


def test_image_search_refuses_parameters_in_the_url(client, catalogue):
    """They would be ignored (the body's fields count): a 400 that says where they go."""
    photo = {"image": SimpleUploadedFile("p.png", corpus.png())}
    response = client.post(f"{IMAGE_URL}?k=2&k=3&in_stock=1", photo)
    assert response.status_code == 400
    assert set(response.json()) == {"k", "in_stock"}
    assert "field of the multipart body, not in the URL" in response.json()["k"][0]
    photo = {"image": SimpleUploadedFile("p.png", corpus.png()), "k": 2}
    assert len(client.post(IMAGE_URL, photo).json()["results"]) == 2


def test_image_search_takes_multipart_only(client, pixel_encoder):
    # A photo cannot travel in a urlencoded form.
    response = client.post(IMAGE_URL, "k=3", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415 and set(response.json()) == {"detail"}
    # A multipart body that cannot be split (no boundary, or one past RFC 2046's 70
    # characters) is a malformed upload, said in the API's words, not DRF's parser's.
    body = b'--x\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\nabc'
    for content_type in ("multipart/form-data", f"multipart/form-data; boundary={'b' * 250}"):
        response = client.generic("POST", IMAGE_URL, body, content_type=content_type)
        assert response.status_code == 400
        assert response.json() == {
            "detail": "The upload could not be read; please send the photo again."
        }


def test_image_search_needs_an_image_and_respects_the_size_limit(client, pixel_encoder, settings):
    response = client.post(IMAGE_URL, {})
    assert response.status_code == 400 and "image" in response.json()
    settings.VISUALSEARCH_MAX_UPLOAD_BYTES = 1024
    response = client.post(IMAGE_URL, {"image": SimpleUploadedFile("p.png", corpus.png())})
    assert response.status_code == 400
    assert "photos up to 1.0\xa0KB are accepted" in response.json()["image"][0]


@pytest.mark.parametrize("case", ["animated_gif", "cmyk_jpeg", "exif_rotated"])
def test_image_search_accepts_awkward_photos(client, catalogue, case):
    make, name = corpus.GOOD_UPLOADS[case]
    response = client.post(IMAGE_URL, {"image": SimpleUploadedFile(name, make()), "k": 4})
    assert response.status_code == 200
    assert len(response.json()["results"]) == 4


def test_image_search_is_throttled(client, pixel_encoder, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"image_search": "3/minute"},
    }
    steady_window()
    statuses = [
        client.post(IMAGE_URL, {"image": SimpleUploadedFile("t.txt", b"not an image")}).status_code
        for _ in range(4)
    ]
    assert statuses == [400, 400, 400, 429]
    # Only uploads are throttled.
    assert client.get(similar_url(1)).status_code == 404


def test_a_cache_table_never_created_fails_no_photo_search(client, catalogue, settings):
    """A warning from ``check --database``, and photo searches served unthrottled rather
    than a 500 on every one."""
    from django.core.cache import caches

    from lookalike.checks import check_cache_tables

    settings.CACHES = {
        **settings.CACHES,
        "forgotten": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "never_created",
        },
    }
    settings.VISUALSEARCH_THROTTLE_CACHE = "forgotten"
    try:
        [warning] = check_cache_tables(databases=["default"])
        assert warning.id == "lookalike.W003" and "'never_created'" in warning.msg
        assert check_cache_tables(databases=[]) == []  # no --database: nothing read
        response = client.post(IMAGE_URL, {"image": image_of(catalogue[3]), "k": 2})
        assert response.status_code == 200
        assert response.json()["results"][0]["id"] == catalogue[3].pk
    finally:
        caches["forgotten"].close()


def test_schema_documents_both_endpoints(client):
    response = client.get(reverse("schema"), {"format": "json"})
    assert response.status_code == 200
    paths = response.json()["paths"]
    similar = paths["/api/products/{id}/similar/"]["get"]
    names = {p["name"] for p in similar["parameters"]}
    assert {"id", "k", "category", "min_price", "max_price", "in_stock"} <= names
    assert {"200", "404", "409"} <= set(similar["responses"])
    upload = paths["/api/search/image/"]["post"]
    body = upload["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert body["$ref"].endswith("/ImageSearch")
    assert {"200", "400", "429"} <= set(upload["responses"])
