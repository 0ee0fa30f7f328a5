"""Lookalike in a django-oscar 4.2 shop, end to end, through Oscar's own models and pages.

The catalogue (conftest.py) is made with Oscar's models and embedded once per module by
the pixel encoder; each test's own writes are rolled back.
"""

import io
import re
from decimal import Decimal

import numpy as np
import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from oscar.core.loading import get_class, get_model
from oscarshop.catalogue import png

from lookalike.catalogue import CATALOGUE, get_adapter
from lookalike.contrib.oscar.adapter import OscarCatalogueAdapter
from lookalike.jobs.models import Job
from lookalike.stamps import current as current_stamp
from recommendations.models import Event, RecommenderModel
from visualsearch import indexing
from visualsearch.admin import compute_embeddings, find_similar_to_selected
from visualsearch.models import ProductEmbedding
from visualsearch.search import remembered
from visualsearch.services import search
from visualsearch.services.vectors import load_vectors

Product = get_model("catalogue", "Product")
ProductCategory = get_model("catalogue", "ProductCategory")
ProductImage = get_model("catalogue", "ProductImage")
StockRecord = get_model("partner", "StockRecord")


@pytest.fixture(scope="module")
def indexed(catalogue, django_db_blocker):
    """The catalogue embedded by a stale reindex (committed for the whole module)."""
    with django_db_blocker.unblock():
        result = indexing.reindex("stale")
    return catalogue, result


def card_ids(html, css_class):
    """Product ids of the cards inside the section with ``css_class``, in page order."""
    match = re.search(rf'<section class="recommendations {css_class}".*?</section>', html, re.S)
    assert match, f"no {css_class} section in the page"
    return [int(pk) for pk in re.findall(r'data-product-id="(\d+)"', match.group(0))]


def oscar_price(product):
    """The price Oscar's strategy quotes for a standalone product (its one stock record)."""
    Selector = get_class("partner.strategy", "Selector")
    info = Selector().strategy().fetch_for_product(product)
    return info.price.excl_tax if info.price.exists else None


def oscar_available(product):
    Selector = get_class("partner.strategy", "Selector")
    strategy = Selector().strategy()
    info = strategy.fetch_for_parent(product) if product.is_parent else None
    info = info or strategy.fetch_for_product(product)
    return info.availability.is_available_to_buy


def brute_force(query_pk, candidates):
    """``candidates`` ordered by cosine distance to the query's stored vector (then id), as
    an exact search must order them."""
    vectors = load_vectors([query_pk, *candidates])
    q = vectors[query_pk].astype(np.float64)
    scored = []
    for pk in candidates:
        if pk in vectors:
            v = vectors[pk].astype(np.float64)
            scored.append((1 - q @ v / (np.linalg.norm(q) * np.linalg.norm(v)), pk))
    return [pk for _, pk in sorted(scored)]


# -- configuration -------------------------------------------------------------------------


def test_system_checks_are_clean():
    out = io.StringIO()
    call_command("check", stdout=out)
    assert "System check identified no issues" in out.getvalue()
    assert isinstance(get_adapter(), OscarCatalogueAdapter)


def test_app_order_is_checked(settings):
    """Listed after Oscar, the app's template overrides lose: the check says so."""
    from django.core import checks

    apps_after = [a for a in settings.INSTALLED_APPS if a != "lookalike.contrib.oscar"]
    apps_after.append("lookalike.contrib.oscar")
    settings.INSTALLED_APPS = apps_after
    messages = [m for m in checks.run_checks() if m.id == "lookalike_oscar.W002"]
    assert {re.search(r"'s (\S+) is used", m.msg).group(1) for m in messages} == {
        "oscar/catalogue/detail.html",
        "oscar/catalogue/browse.html",
        "visualsearch/base.html",
    }
    assert all("INSTALLED_APPS" in m.msg for m in messages)


def test_the_default_fields_adapter_is_told_to_name_oscars(settings):
    """With the default adapter, Oscar's product has none of the flat fields it reads: one
    error naming the Oscar adapter, not six about LOOKALIKE_PRODUCT_FIELDS to fill in."""
    from django.core import checks

    settings.LOOKALIKE_CATALOGUE_ADAPTER = "lookalike.catalogue.FieldsCatalogueAdapter"
    messages = [m for m in checks.run_checks() if m.is_serious()]
    assert [m.id for m in messages] == ["lookalike_oscar.E003"]
    assert "6 of them do not fit catalogue.Product" in messages[0].msg
    assert messages[0].hint.startswith(
        "Set LOOKALIKE_CATALOGUE_ADAPTER = 'lookalike.contrib.oscar.adapter.OscarCatalogueAdapter'"
    )
    # The named adapter is the one this shop runs on, which passes.
    settings.LOOKALIKE_CATALOGUE_ADAPTER = messages[0].hint.split("'")[1]
    assert [m for m in checks.run_checks() if m.is_serious()] == []


def test_a_product_model_under_oscars_app_label_is_told_its_label(settings):
    """Oscar's product is catalogue.Product, not oscar.Product."""
    from django.core import checks

    settings.LOOKALIKE_PRODUCT_MODEL = "oscar.Product"
    [error] = [m for m in checks.run_checks() if m.id == "lookalike.E003"]
    assert error.hint.endswith("did you mean 'catalogue.Product'?")


@pytest.mark.parametrize(
    "copy, warned",
    [
        ('{% extends "oscar/layout.html" %}{% block content %}Mine{% endblock %}', True),
        (
            '{% extends "oscar/layout.html" %}{% load recommendations %}'
            "{% block content %}Mine {% similar_items product %}{% endblock %}",
            False,
        ),
        (
            '{% extends "oscar/catalogue/detail.html" %}'
            "{% block content %}Mine {{ block.super }}{% endblock %}",
            False,
        ),
    ],
)
def test_a_project_copy_of_the_product_page_without_the_widgets_is_warned_about(
    settings, tmp_path, copy, warned
):
    """Oscar's usual customisation, a copy of its template in TEMPLATES' DIRS, is found
    before every app's: unless it shows the widgets or extends the app's template (found
    next), they vanish from the product page."""
    from django.core import checks

    (tmp_path / "oscar" / "catalogue").mkdir(parents=True)
    (tmp_path / "oscar" / "catalogue" / "detail.html").write_text(copy)
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [tmp_path]}]
    messages = [m for m in checks.run_checks() if m.id.startswith("lookalike_oscar.")]
    if not warned:
        assert messages == []
        return
    [warning] = messages
    assert warning.id == "lookalike_oscar.W003"
    assert str(tmp_path / "oscar" / "catalogue" / "detail.html") in warning.msg
    assert "'Similar items' widget" in warning.msg
    assert "{% load recommendations %}" in warning.hint


# -- the adapter against Oscar's own answers ----------------------------------------------


@pytest.mark.django_db
def test_adapter_reads_oscar_models(catalogue, django_assert_num_queries):
    adapter = get_adapter()
    shown = set(adapter.get_queryset().values_list("pk", flat=True))
    assert shown == set(Product.objects.browsable().values_list("pk", flat=True))
    assert catalogue["hidden-shirt"].pk not in shown
    assert catalogue["polo-m"].pk not in shown
    assert catalogue["hidden-shirt"].pk in set(
        adapter.get_indexed_queryset().values_list("pk", flat=True)
    )

    products = list(adapter.annotate(adapter.get_queryset()).order_by("pk"))
    with django_assert_num_queries(0):  # one query loaded the grid; the cards ask nothing
        cards = {p.pk: adapter.get_card(p) for p in products}
    for product in products:
        card = cards[product.pk]
        assert card.title == product.get_title()
        assert card.url == product.get_absolute_url()
        image = product.primary_image()
        expected = None if isinstance(image, dict) else image.original.url
        assert card.image_url == expected
        first = product.categories.order_by("productcategory__pk").first()
        assert card.category == (first.full_name if first else None)
        assert card.in_stock == oscar_available(product), product.slug
        if not product.is_parent:
            assert card.price == oscar_price(product), product.slug
        assert card.currency == "EUR"

    polo = cards[catalogue["polo"].pk]
    assert polo.price == Decimal("24.00")  # the cheapest public child (XL is hidden)
    assert polo.in_stock  # size M is
    assert cards[catalogue["dress-shirt"].pk].category == "Clothing > Shirts > Formal"
    assert not cards[catalogue["linen-shirt"].pk].in_stock
    assert cards[catalogue["gift-card"].pk].in_stock  # its class does not track stock
    assert cards[catalogue["no-photo-scarf"].pk].image_url is None


@pytest.mark.django_db
def test_category_and_price_filters_on_the_product_table(catalogue):
    adapter = get_adapter()
    queryset = adapter.get_queryset()

    def slugs(qs):
        return set(qs.values_list("slug", flat=True))

    clothing = catalogue.categories["clothing"].pk
    assert slugs(adapter.filter_category(queryset, clothing)) == {
        "white-shirt",
        "dress-shirt",
        "linen-shirt",
        "chinos",
        "jeans",
        "polo",
        "no-photo-scarf",
    }
    assert slugs(adapter.filter_category(queryset, catalogue.categories["shirts"].pk)) == {
        "white-shirt",
        "dress-shirt",
        "linen-shirt",
        "polo",
    }
    assert slugs(adapter.filter_category(queryset, 10**9)) == set()
    assert slugs(adapter.filter_price(queryset, Decimal("24"), Decimal("42.50"))) == {
        "white-shirt",
        "linen-shirt",
        "gift-card",
        "polo",
    }
    assert "linen-shirt" not in slugs(adapter.filter_in_stock(queryset))
    assert {"polo", "gift-card"} <= slugs(adapter.filter_in_stock(queryset))


# -- indexing and search -------------------------------------------------------------------


@pytest.mark.django_db
def test_reindex_embeds_every_browsable_product_with_an_image(indexed):
    catalogue, result = indexed
    embedded = set(ProductEmbedding.objects.values_list("product_id", flat=True))
    with_image = {
        p.pk for p in Product.objects.filter(parent=None) if not isinstance(p.primary_image(), dict)
    }
    assert embedded == with_image
    assert result["embedded"] == len(with_image) and result["failed"] == 0
    assert result["no_image_ids"] == [catalogue["no-photo-scarf"].pk]
    assert not embedded & set(
        Product.objects.filter(structure="child").values_list("pk", flat=True)
    )
    # The copies of price on the vectors are the adapter's prices.
    polo = ProductEmbedding.objects.get(product=catalogue["polo"])
    assert polo.product_price == 24.0 and polo.product_category is None


@pytest.mark.django_db
def test_find_similar_in_a_category_tree(indexed):
    catalogue, _ = indexed
    shirt = catalogue["white-shirt"]
    clothing = catalogue.categories["clothing"]
    hits = search.similar_to_product(shirt.pk, k=20, filters=search.Filters(clothing.pk))
    in_tree = set(
        Product.objects.browsable()
        .filter(categories__in=clothing.get_descendants_and_self())
        .values_list("pk", flat=True)
    ) - {shirt.pk}
    assert [h.product_id for h in hits] == brute_force(shirt.pk, sorted(in_tree))
    assert catalogue["dress-shirt"].pk in {h.product_id for h in hits}  # two levels down
    assert catalogue["cushion"].pk not in {h.product_id for h in hits}


@pytest.mark.django_db
def test_find_similar_under_a_price_range(indexed):
    catalogue, _ = indexed
    shirt = catalogue["white-shirt"]
    low, high = Decimal("20.00"), Decimal("55.00")
    hits = search.similar_to_product(
        shirt.pk, k=20, filters=search.Filters(min_price=low, max_price=high)
    )
    priced = {}
    for product in Product.objects.browsable():
        records = StockRecord.objects.filter(
            product__in=product.children.filter(is_public=True) if product.is_parent else [product]
        )
        prices = [r.price for r in records if r.price is not None]
        if prices:
            priced[product.pk] = min(prices)
    expected = sorted(pk for pk, p in priced.items() if low <= p <= high and pk != shirt.pk)
    assert [h.product_id for h in hits] == brute_force(shirt.pk, expected)
    assert catalogue["polo"].pk in {h.product_id for h in hits}  # 24.00, from size M


@pytest.mark.django_db
def test_non_public_products_are_never_shown(indexed, client):
    catalogue, _ = indexed
    hidden = catalogue["hidden-shirt"]
    vector = load_vectors([hidden.pk])[hidden.pk]
    hits = search.search_by_vector(vector, k=50)
    assert hidden.pk not in {h.product_id for h in hits}
    assert hits[0].product_id == catalogue["white-shirt"].pk  # the same photo, public
    assert client.get(reverse("visualsearch:similar", args=[hidden.pk])).status_code == 404
    assert client.get(f"/api/products/{hidden.pk}/similar/").status_code == 404


@pytest.mark.django_db
def test_photo_search_api_and_page(indexed, client):
    catalogue, _ = indexed
    upload = io.BytesIO(png(3))
    upload.name = "photo.png"
    response = client.post("/api/search/image/", {"image": upload, "k": 5})
    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert results[0]["id"] == catalogue["dress-shirt"].pk
    assert results[0]["price"] == "55.00" and results[0]["currency"] == "EUR"
    assert results[0]["category"] == "Clothing > Shirts > Formal"
    assert catalogue["hidden-shirt"].pk not in {r["id"] for r in results}

    page = client.get(reverse("visualsearch:search_by_photo"))
    assert page.status_code == 200
    upload = io.BytesIO(png(3))
    upload.name = "photo.png"
    page = client.post(reverse("visualsearch:search_by_photo"), {"image": upload})
    html = page.content.decode()
    assert page.status_code == 200
    assert '<header class="header container">' in html  # Oscar's layout
    ids = [int(pk) for pk in re.findall(r'data-product-id="(\d+)"', html)]
    assert ids[0] == catalogue["dress-shirt"].pk
    assert f"{catalogue['dress-shirt'].get_absolute_url()}?from=photo" in html


@pytest.mark.django_db
def test_photo_page_lists_the_tree_by_full_name_in_two_queries(
    indexed, client, django_assert_max_num_queries
):
    """Each category reads as Oscar's full name, in tree order, and the list costs the same
    whatever its length (Oscar's ``full_name`` walks up the tree: a query per category)."""
    catalogue, _ = indexed
    Category = get_model("catalogue", "Category")
    url = reverse("visualsearch:search_by_photo")

    def options():
        page = client.get(url)
        assert page.status_code == 200
        return re.findall(r'<option value="(\d+)"[^>]*>([^<]*)</option>', page.content.decode())

    shown = options()
    public = Category.objects.filter(is_public=True, ancestors_are_public=True)
    assert shown == [(str(c.pk), c.full_name.replace(">", "&gt;")) for c in public]
    assert (str(catalogue.categories["formal"].pk), "Clothing &gt; Shirts &gt; Formal") in shown
    with CaptureQueriesContext(connection) as before:
        options()
    shirts = catalogue.categories["formal"]
    for n in range(20):
        shirts = shirts.add_child(name=f"Style {n}")
    with django_assert_max_num_queries(len(before)):
        grown = options()
    assert len(grown) == len(shown) + 20
    deepest = " &gt; ".join(["Clothing", "Shirts", "Formal"] + [f"Style {n}" for n in range(20)])
    assert (str(shirts.pk), deepest) in grown


@pytest.mark.django_db
def test_find_similar_page_inside_oscar_layout(indexed, client):
    catalogue, _ = indexed
    shirt = catalogue["white-shirt"]
    url = reverse("visualsearch:similar", args=[shirt.pk])
    # The main category is Shirts: Formal below it counts, and the price range applies.
    response = client.get(url, {"same_category": "on", "max_price": "50"})
    html = response.content.decode()
    assert response.status_code == 200
    assert '<header class="header container">' in html  # Oscar's header and its stylesheet
    assert "oscar/css/styles.css" in html and "lookalike/oscar/lookalike.css" in html
    assert 'class="default lookalike-oscar"' in html
    assert "<h1></h1>" not in re.sub(r"\s+", "", html)  # Oscar's empty page header is left out
    assert "<title>" in html and "Similar to White Shirt" in html
    ids = [int(pk) for pk in re.findall(r'data-product-id="(\d+)"', html)]
    assert set(ids) == {catalogue["linen-shirt"].pk, catalogue["polo"].pk}
    assert 'class="product_pod lookalike-card"' in html
    assert 'alt="Linen Shirt"' in html and "?from=similar" in html
    assert "€42.50" in html and "From €24.00" in html  # Oscar's currency filter
    # The header's price too (lookalike/price.html), not "59.00 EUR" beside "€42.50".
    header = re.search(r"<p class=\"muted\">(.*?)</p>", html, re.S).group(1)
    assert "€" in header and "EUR" not in header, header
    # A parent's price in the header is its variants' lowest, said so as on its card.
    polo = client.get(reverse("visualsearch:similar", args=[catalogue["polo"].pk]))
    header = re.search(r"<p class=\"muted\">(.*?)</p>", polo.content.decode(), re.S).group(1)
    assert "From €24.00" in header, header


@pytest.mark.django_db
def test_a_variant_is_searched_as_its_parent(indexed, client, rf, django_user_model):
    """Oscar serves a variant's own page; the plugins index and recommend it as its
    parent, so every way in leads there."""
    catalogue, _ = indexed
    polo, small = catalogue["polo"], catalogue["polo-s"]
    response = client.get(reverse("visualsearch:similar", args=[small.pk]), {"max_price": "50"})
    assert response.status_code == 302
    assert response.url == reverse("visualsearch:similar", args=[polo.pk]) + "?max_price=50"
    from_variant = client.get(f"/api/products/{small.pk}/similar/")
    assert from_variant.status_code == 200
    assert from_variant.json() == client.get(f"/api/products/{polo.pk}/similar/").json()
    html = client.get(small.get_absolute_url()).content.decode()
    assert reverse("visualsearch:similar", args=[polo.pk]) in html  # "Find similar"
    strip = re.search(r'data-widget="similar-items".*?</section>', html, re.S)
    assert strip and f'data-product-id="{polo.pk}"' not in strip.group(0)
    # The admin's action embeds the parent of a variant selected.
    told = []

    class ProductAdmin:
        def message_user(self, request, message, level):
            told.append(str(message))

    request = rf.post("/admin/")
    request.user = django_user_model.objects.create_superuser("root", "r@example.com", "pw")
    selected = Product.objects.filter(pk__in=[small.pk, catalogue["polo-m"].pk])
    compute_embeddings(ProductAdmin(), request, selected)
    assert told and "No product" not in told[0]
    job = Job.objects.filter(lock_key=indexing.LOCK_KEY).latest("pk")
    assert job.params["ids"] == [polo.pk]
    # So does "Find similar to selected": the parent's page, as the variant's address.
    response = find_similar_to_selected(ProductAdmin(), request, selected)
    assert response.url == reverse("visualsearch:similar", args=[polo.pk])


# -- events, training and the widgets in Oscar's pages ------------------------------------


def browse(client, catalogue, views, basket=()):
    """A shopper's visit. The first page of a new browser only starts its session (events
    count from its next request on), so it is the first product's page, once more."""
    if views and not client.cookies.get("sessionid"):
        client.get(catalogue[views[0]].get_absolute_url())
    for name in views:
        response = client.get(catalogue[name].get_absolute_url())
        assert response.status_code == 200
    for name in basket:
        response = client.post(reverse("basket:add", args=[catalogue[name].pk]), {"quantity": 1})
        assert response.status_code == 302


@pytest.mark.django_db
def test_oscar_pages_record_events(indexed, client):
    catalogue, _ = indexed
    polo, polo_m = catalogue["polo"], catalogue["polo-m"]
    shirt = catalogue["white-shirt"]
    assert client.get(shirt.get_absolute_url()).status_code == 200  # starts the session
    assert client.get(shirt.get_absolute_url()).status_code == 200
    # A click from one of the shop's pages on a Lookalike widget's link.
    from_page = {"HTTP_REFERER": f"http://testserver{shirt.get_absolute_url()}"}
    response = client.get(polo.get_absolute_url() + "?from=similar-widget", **from_page)
    assert response.status_code == 200
    assert client.get(polo_m.get_absolute_url()).status_code == 200  # a variant's page
    response = client.post(reverse("basket:add", args=[polo_m.pk]), {"quantity": 1})
    assert response.status_code == 302
    basket = client.get(reverse("basket:summary")).content.decode()
    assert "Polo" in basket  # Oscar's basket holds the variant
    events = list(Event.objects.order_by("id").values_list("product_id", "kind", "source"))
    assert events == [
        (shirt.pk, "view", ""),
        (polo.pk, "similar_click", "similar-widget"),
        (polo.pk, "view", ""),  # a child's page counts for its parent
        (polo.pk, "cart", ""),
    ]
    assert len(set(Event.objects.values_list("session_key", flat=True))) == 1


@pytest.mark.django_db
def test_checkout_records_a_purchase_per_line(indexed, client, django_user_model):
    catalogue, _ = indexed
    Country = get_model("address", "Country")
    Country.objects.create(
        iso_3166_1_a2="GB",
        iso_3166_1_a3="GBR",
        iso_3166_1_numeric="826",
        printable_name="United Kingdom",
        name="United Kingdom",
        is_shipping_country=True,
    )
    user = django_user_model.objects.create_user("ann", "ann@example.com", "pw-ann-123")
    client.force_login(user)
    browse(client, catalogue, [], basket=["polo-m", "chinos"])
    response = client.post(
        reverse("checkout:shipping-address"),
        {
            "first_name": "Ann",
            "last_name": "Smith",
            "line1": "1 High Street",
            "line4": "London",
            "postcode": "SW1A 1AA",
            "country": "GB",
        },
        follow=True,
    )
    assert response.status_code == 200
    response = client.post(reverse("checkout:preview"), {"action": "place_order"}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("checkout:thank-you")
    purchases = Event.objects.filter(kind="purchase", user=user)
    assert sorted(purchases.values_list("product_id", flat=True)) == sorted(
        [catalogue["polo"].pk, catalogue["chinos"].pk]
    )


@pytest.mark.django_db
def test_a_failing_event_never_breaks_oscar_page(indexed, client, monkeypatch, caplog):
    from lookalike.contrib.oscar import receivers

    def broken(*args, **kwargs):
        raise RuntimeError("events are down")

    monkeypatch.setattr(receivers, "record_event", broken)
    monkeypatch.setattr(receivers.events, "record_view", broken)
    catalogue, _ = indexed
    response = client.get(catalogue["jeans"].get_absolute_url())
    assert response.status_code == 200
    assert "events are down" in caplog.text
    assert not Event.objects.exists()


@pytest.mark.django_db
def test_training_and_widgets_in_oscar_pages(indexed, client, caplog, settings):
    from django.test import Client

    from recommendations.services.training import train

    catalogue, _ = indexed
    shoppers = [
        (["white-shirt", "dress-shirt", "linen-shirt"], ["white-shirt"]),
        (["white-shirt", "dress-shirt", "polo"], ["polo-m"]),
        (["chinos", "jeans"], ["jeans"]),
        (["chinos", "jeans", "cushion"], []),
    ]
    for views, basket in shoppers:
        browse(Client(), catalogue, views, basket)
    model = train(factors=4, iterations=3, evaluate=False)
    assert RecommenderModel.objects.get(is_active=True) == model

    # A shopper who looked at shirts: the home page has a "Recommended for you" strip.
    browse(client, catalogue, ["white-shirt", "dress-shirt"])
    home = client.get("/", follow=True)
    assert home.status_code == 200
    html = home.content.decode()
    shown = set(get_adapter().get_queryset().values_list("pk", flat=True))
    for_you = card_ids(html, "for-you")
    assert for_you and set(for_you) <= shown
    assert "Recommended for you" in html and "?from=for-you" in html
    assert 'data-profile="fallback"' not in html
    # A category page keeps to its category: no strip there.
    shirts = client.get(catalogue.categories["shirts"].get_absolute_url())
    assert shirts.status_code == 200 and 'data-widget="for-you"' not in shirts.content.decode()

    # The product page has a "Similar items" strip of other shown products, and the
    # shopper's "Recommended for you" strip of others still (strips of three: the
    # catalogue is small).
    settings.RECOMMENDATIONS_WIDGET_SIZE = 3
    page = client.get(catalogue["white-shirt"].get_absolute_url())
    html = page.content.decode()
    similar = card_ids(html, "similar-items")
    assert similar and set(similar) <= shown - {catalogue["white-shirt"].pk}
    for_you = card_ids(html, "for-you")
    assert for_you and set(for_you) <= shown and not set(for_you) & set(similar)
    # "Find similar" sits in the product's column, under the basket form.
    links = html.index("lookalike-oscar-links")
    assert html.index("product_main") < html.index("add_to_basket_form") < links
    assert links < html.index("<!-- /col-sm-6 -->") < html.index('data-widget="similar-items"')
    assert catalogue["hidden-shirt"].pk not in similar
    assert "Similar items" in html and "?from=similar-widget" in html
    assert 'data-profile="fallback"' not in html  # the blend answered, not the fallback
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
    assert 'alt="Dress Shirt"' in html or 'alt="Linen Shirt"' in html

    # A click from the strip is recorded as such.
    client.get(
        catalogue["dress-shirt"].get_absolute_url() + "?from=similar-widget",
        HTTP_REFERER=f"http://testserver{catalogue['white-shirt'].get_absolute_url()}",
    )
    assert Event.objects.filter(kind="similar_click", source="similar-widget").exists()


# -- changes -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_stock_record_changes_update_the_vector_price_copy(indexed):
    catalogue, _ = indexed
    record = StockRecord.objects.get(product=catalogue["white-shirt"])
    record.price = Decimal("33.00")
    record.save()
    assert ProductEmbedding.objects.get(product=catalogue["white-shirt"]).product_price == 33.0

    # A variant's record prices its parent.
    record = StockRecord.objects.get(product=catalogue["polo-m"])
    record.price = Decimal("21.00")
    record.save()
    assert ProductEmbedding.objects.get(product=catalogue["polo"]).product_price == 21.0
    # Publishing the hidden XL variant makes it the cheapest.
    xl = catalogue["polo-xl"]
    xl.is_public = True
    xl.save()
    assert ProductEmbedding.objects.get(product=catalogue["polo"]).product_price == 9.0


@pytest.mark.django_db
def test_a_parent_is_priced_from_a_variant_for_sale(indexed):
    """A parent's "from" price is its cheapest variant that can be bought now; only when
    none can is it the cheapest of all, as for a product with several partners' records."""
    catalogue, _ = indexed
    adapter = get_adapter()
    polo = catalogue["polo"]
    small = StockRecord.objects.get(product=catalogue["polo-s"])  # sold out
    medium = StockRecord.objects.get(product=catalogue["polo-m"])  # 24.00, 3 in stock
    small.price = Decimal("20.00")
    small.save()

    def price():
        return adapter.get_price(Product.objects.get(pk=polo.pk))

    def listed_up_to(amount):
        priced = adapter.filter_price(adapter.get_queryset(), None, Decimal(amount))
        return priced.filter(pk=polo.pk).exists()

    assert price() == Decimal("24.00") and not listed_up_to("22")
    assert ProductEmbedding.objects.get(product=polo).product_price == 24.0
    medium.allocate(3)  # its last three: no variant is for sale now
    assert price() == Decimal("20.00") and listed_up_to("22")
    assert not adapter.is_in_stock(Product.objects.get(pk=polo.pk))
    assert ProductEmbedding.objects.get(product=polo).product_price == 20.0


@pytest.mark.django_db
def test_an_order_moves_the_catalogue_stamp_only_when_it_sells_the_last_item(indexed):
    """Oscar allocates stock for every order line and sends ``post_save`` for the record:
    the values every process keeps under the catalogue's stamp survive an order that
    leaves the record with stock to sell."""
    catalogue, _ = indexed
    shirt = catalogue["white-shirt"]  # 5 in stock
    record = StockRecord.objects.get(product=shirt)
    in_stock = search.Filters(in_stock=True)

    def moves_the_stamp(change):
        before = current_stamp(CATALOGUE.name)
        with transaction.atomic():
            change()
        return current_stamp(CATALOGUE.name) != before

    def kept_in_stock_answer():
        hits = remembered.similar_to_product(catalogue["dress-shirt"].pk, k=20, filters=in_stock)
        return [product.pk for product, _ in search.hydrate(hits, in_stock)]

    assert shirt.pk in kept_in_stock_answer()
    assert not moves_the_stamp(lambda: record.allocate(1))
    assert not moves_the_stamp(lambda: record.allocate(3))  # one left
    assert not moves_the_stamp(lambda: record.consume_allocation(2))  # shipped: still one
    assert moves_the_stamp(lambda: record.allocate(1))  # the last one
    assert shirt.pk not in kept_in_stock_answer()
    # A product class that stops tracking stock puts its products back on sale.
    product_class = shirt.product_class
    product_class.track_stock = False
    assert moves_the_stamp(product_class.save)
    assert shirt.pk in kept_in_stock_answer()
    product_class.track_stock = True
    assert moves_the_stamp(product_class.save)
    assert shirt.pk not in kept_in_stock_answer()
    assert moves_the_stamp(lambda: record.cancel_allocation(1))  # back in stock
    assert shirt.pk in kept_in_stock_answer()  # searched again: found

    record.refresh_from_db()
    record.price = Decimal("31.00")
    assert moves_the_stamp(record.save)
    link = ProductCategory.objects.create(
        product=shirt, category=catalogue.categories["home"]
    )  # a category filter matches every link, not only the main category
    assert moves_the_stamp(link.delete)
    assert moves_the_stamp(record.delete)


@pytest.mark.django_db
def test_a_new_main_image_is_embedded(indexed, settings, django_capture_on_commit_callbacks):
    catalogue, _ = indexed
    settings.VISUALSEARCH_INDEX_ON_SAVE = True
    scarf = catalogue["no-photo-scarf"]
    with django_capture_on_commit_callbacks(execute=True):
        ProductImage.objects.create(
            product=scarf, original=_image_file("scarf.png", 4), display_order=0
        )
    embedding = ProductEmbedding.objects.get(product=scarf)
    assert embedding.image_name == ProductImage.objects.get(product=scarf).original.name


def _image_file(name, seed):
    from django.core.files.base import ContentFile

    return ContentFile(png(seed), name=name)
