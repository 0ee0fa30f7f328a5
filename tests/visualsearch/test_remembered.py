"""Answers of "find similar" kept per process (``visualsearch.search.remembered``): searched
once while the catalogue and the vectors stand, searched again when either changes, and
never shown past their filter; their cards rendered once (``lookalike.cards``)."""

import pytest
from django.conf import settings

from lookalike.cards import CARDS, SCORED_CARDS
from shop.models import Product
from tests.recommendations.blend_support import (  # noqa: F401 (fixture)
    blend_environment,
    embed,
)
from visualsearch import search
from visualsearch.search import remembered
from visualsearch.services.vectors import vectors_changed

pytestmark = pytest.mark.django_db


@pytest.fixture
def catalogue(product_factory):
    products = [product_factory(title=f"P{i}", stock=5) for i in range(4)]
    for i, p in enumerate(products):
        embed(p, [1.0, 0.2 * i, 0.0, 0.0])
    return products


@pytest.fixture
def searches(monkeypatch):
    """The product ids each real search was asked about; ``calls.depths``, how deep."""
    calls = SearchLog()
    real = remembered.search_similar

    def counting(product_id, k, filters):
        calls.append(product_id)
        calls.depths.append(k)
        return real(product_id, k, filters)

    monkeypatch.setattr(remembered, "search_similar", counting)
    return calls


class SearchLog(list):
    def __init__(self):
        super().__init__()
        self.depths = []


def ids(hits):
    return [hit.product_id for hit in hits]


def test_the_same_question_is_searched_once(catalogue, searches):
    first = remembered.similar_to_product(catalogue[0].pk, k=3)
    assert ids(first) == [p.pk for p in catalogue[1:]]
    assert ids(first) == ids(search.similar_to_product(catalogue[0].pk, k=3))
    again = remembered.similar_to_product(str(catalogue[0].pk), k=3)  # any spelling of the key
    assert ids(again) == ids(first) and searches == [catalogue[0].pk]
    remembered.similar_to_product(catalogue[0].pk, k=2)  # another question
    assert len(searches) == 2


def test_exclusions_in_any_order_are_one_question(catalogue, searches):
    a = search.Filters(exclude_ids=(catalogue[1].pk, catalogue[2].pk))
    b = search.Filters(exclude_ids=(catalogue[2].pk, catalogue[1].pk, catalogue[2].pk))
    assert ids(remembered.similar_to_product(catalogue[0].pk, 3, a)) == [catalogue[3].pk]
    assert ids(remembered.similar_to_product(catalogue[0].pk, 3, b)) == [catalogue[3].pk]
    assert len(searches) == 1


def test_shoppers_with_other_exclusions_share_one_search(product_factory, searches):
    """One answer per product serves every shopper: each one's exclusions are taken out of
    a deeper answer, which gives what a search with the exclusions gives."""
    products = [product_factory(title=f"Q{i}", stock=5) for i in range(40)]
    for i, p in enumerate(products):
        embed(p, [1.0, 0.05 * i, 0.01 * (i % 3), 0.0])
    anchor = products[0].pk
    nearest = ids(search.similar_to_product(anchor, k=10))
    shoppers = [
        (),  # bought nothing
        (nearest[0], nearest[3]),  # bought two of the look-alikes
        tuple(nearest[5:9]) + (products[-1].pk,),
        (anchor,),  # the product itself costs no depth
    ]
    shoppers_filters = [search.Filters(exclude_ids=excluded) for excluded in shoppers]
    for excluded, filters in zip(shoppers, shoppers_filters, strict=True):
        kept = remembered.similar_to_product(anchor, k=5, filters=filters)
        assert ids(kept) == ids(search.similar_to_product(anchor, k=5, filters=filters))
        assert len(kept) == 5 and not set(ids(kept)) & set(excluded)
    # Two answers: as deep as asked for the caller without exclusions, and one 16 deeper
    # for every caller with up to 16 besides the product.
    assert searches == [anchor, anchor] and searches.depths == [5, 21]
    spelled = search.Filters(exclude_ids=(str(nearest[0]), str(nearest[3])))  # from a form
    assert ids(remembered.similar_to_product(anchor, k=5, filters=spelled)) == ids(
        search.similar_to_product(anchor, k=5, filters=shoppers_filters[1])
    )
    assert len(searches) == 2
    many = search.Filters(exclude_ids=tuple(nearest[:10]) + tuple(p.pk for p in products[20:30]))
    kept = remembered.similar_to_product(anchor, k=5, filters=many)
    assert ids(kept) == ids(search.similar_to_product(anchor, k=5, filters=many))
    assert searches.depths[-1] == 37  # 20 exclusions: 32 deeper


def test_exclusions_past_the_deepest_search_get_their_own(product_factory, searches, monkeypatch):
    products = [product_factory(title=f"R{i}", stock=5) for i in range(12)]
    for i, p in enumerate(products):
        embed(p, [1.0, 0.05 * i, 0.0, 0.0])
    monkeypatch.setattr(remembered, "MAX_K", 5)  # the deepest search allowed
    anchor = products[0].pk
    bought = search.Filters(exclude_ids=(products[1].pk, products[2].pk))
    kept = remembered.similar_to_product(anchor, k=5, filters=bought)
    assert ids(kept) == [p.pk for p in products[3:8]]
    assert len(searches) == 2  # the kept answer (5 deep), then the caller's own


@pytest.mark.parametrize("k", [0, 1001, "3", None, 2.5])
def test_a_bad_k_is_refused(catalogue, k):
    with pytest.raises(ValueError, match="k must be an integer"):
        remembered.similar_to_product(catalogue[0].pk, k=k)


def test_exclusions_that_leave_too_few_give_every_other_product(catalogue, searches):
    everything_but_one = search.Filters(exclude_ids=tuple(p.pk for p in catalogue[1:3]))
    kept = remembered.similar_to_product(catalogue[0].pk, k=3, filters=everything_but_one)
    assert ids(kept) == [catalogue[3].pk]
    # The short answer was every product there is: nothing was searched again.
    assert searches == [catalogue[0].pk]


def test_a_saved_product_or_new_vectors_search_again(catalogue, searches):
    remembered.similar_to_product(catalogue[0].pk, k=3)
    catalogue[3].title = "Renamed"
    catalogue[3].save()  # the catalogue's stamp
    remembered.similar_to_product(catalogue[0].pk, k=3)
    assert len(searches) == 2
    vectors_changed()  # the vectors' stamp, as the indexing's writes do
    remembered.similar_to_product(catalogue[0].pk, k=3)
    assert len(searches) == 3
    catalogue[1].delete()
    assert catalogue[1].pk not in ids(remembered.similar_to_product(catalogue[0].pk, k=3))


def test_not_indexed_is_not_kept(product_factory, catalogue, searches):
    bare = product_factory(title="No vector yet")
    for _ in range(2):
        with pytest.raises(search.NotIndexed):
            remembered.similar_to_product(bare.pk, k=3)
    assert searches == [bare.pk, bare.pk]
    embed(bare, [1.0, 0.0, 0.0, 0.0])  # a saved vector moves the vectors' stamp
    assert len(remembered.similar_to_product(bare.pk, k=3)) == 3


def test_a_product_that_left_the_filter_unseen_is_dropped_when_shown(catalogue, client):
    in_stock = search.Filters(in_stock=True)
    hits = remembered.similar_to_product(catalogue[0].pk, 3, in_stock)
    assert catalogue[1].pk in ids(hits)
    # Sold out by an update() that moves no stamp: the kept hits still name it...
    Product.objects.filter(pk=catalogue[1].pk).update(stock=0)
    kept = remembered.similar_to_product(catalogue[0].pk, 3, in_stock)
    assert catalogue[1].pk in ids(kept)
    # ...but the products shown are checked against the filter again.
    shown = [product.pk for product, _ in search.hydrate(kept, in_stock)]
    assert shown == [catalogue[2].pk, catalogue[3].pk]
    page = client.get(f"/visual/similar/{catalogue[0].pk}/?in_stock=on")
    assert page.status_code == 200
    assert f'data-product-id="{catalogue[1].pk}"' not in page.content.decode()
    assert f'data-product-id="{catalogue[2].pk}"' in page.content.decode()
    api = client.get(f"/api/products/{catalogue[0].pk}/similar/?in_stock=true")
    assert api.status_code == 200
    assert catalogue[1].pk not in [r["id"] for r in api.json()["results"]]


def test_a_kept_answer_short_of_a_product_changed_unseen_is_searched_again(
    product_factory, client, searches, caplog
):
    """A product hidden by an ``update()`` (no stamp moved) would leave a kept answer one
    short on every page and call until the next save; it is searched again instead, with
    the catalogue's stamp moved for every process."""
    from lookalike.catalogue import CATALOGUE
    from lookalike.stamps import current

    products = [product_factory(title=f"Q{i}", stock=5) for i in range(6)]
    for i, p in enumerate(products):
        embed(p, [1.0, 0.2 * i, 0.0, 0.0])
    first, gone = products[0], products[1]
    url = f"/api/products/{first.pk}/similar/?k=3"
    assert [r["id"] for r in client.get(url).json()["results"]] == [p.pk for p in products[1:4]]
    assert searches == [first.pk]
    stamp = current(CATALOGUE.name)
    Product.objects.filter(pk=gone.pk).update(is_active=False)
    answer = [r["id"] for r in client.get(url).json()["results"]]
    assert answer == [p.pk for p in products[2:5]]  # three, the next one in
    assert searches == [first.pk, first.pk] and current(CATALOGUE.name) != stamp
    assert "1 of 3 kept look-alikes are no longer shown" in caplog.text
    # The page, the same: its twelve-deep answer holds every other product.
    page = client.get(f"/visual/similar/{first.pk}/").content.decode()
    assert f'data-product-id="{gone.pk}"' not in page
    assert all(f'data-product-id="{p.pk}"' in page for p in products[2:])
    # A host that says so after its bulk update needs no second look.
    from lookalike.changes import catalogue_changed

    Product.objects.filter(pk=gone.pk).update(is_active=True)
    catalogue_changed()
    answer = [r["id"] for r in client.get(url).json()["results"]]
    assert answer == [p.pk for p in products[1:4]]


def grid(response):
    html = response.content.decode()
    return html[html.index('<div class="grid vs-results">') :]


def card_renders(response):
    return sum(t.name == settings.LOOKALIKE_CARD_TEMPLATE for t in response.templates)


def test_a_find_similar_page_seen_again_renders_no_card(catalogue, client):
    SCORED_CARDS.clear()
    url = f"/visual/similar/{catalogue[0].pk}/"
    first = client.get(url)
    assert card_renders(first) == 3
    again = client.get(url)
    assert card_renders(again) == 0  # every card, its score included, reused
    assert grid(again) == grid(first)
    # A filter that keeps the same products shows the same cards: nothing to render.
    filtered = client.get(url + "?in_stock=on")
    assert card_renders(filtered) == 0


def test_a_reused_card_still_shows_what_changed(catalogue, client):
    url = f"/visual/similar/{catalogue[0].pk}/"
    client.get(url)
    # A price written by update() sends no signal and moves no stamp: the card's key changes.
    Product.objects.filter(pk=catalogue[2].pk).update(price="123.45")
    page = client.get(url)
    assert card_renders(page) == 1
    assert "123.45" in page.content.decode()
    # The same product found for another product has another score: its own card.
    other = client.get(f"/visual/similar/{catalogue[3].pk}/")
    assert card_renders(other) == 3


def test_scored_cards_never_push_out_the_widgets_cards(catalogue, client):
    CARDS.clear()
    SCORED_CARDS.clear()
    client.get(f"/visual/similar/{catalogue[0].pk}/")
    assert CARDS._values == {} and len(SCORED_CARDS._values) == 3


def test_a_card_that_reads_the_shopper_is_rendered_each_time_when_told(
    catalogue, client, settings, tmp_path, django_user_model
):
    """With LOOKALIKE_REUSE_CARDS off, the card template gets the request's context and is
    rendered for each page: no shopper sees a card made for another."""
    (tmp_path / "card.html").write_text(
        '<div data-product-id="{{ product.pk }}">{{ user.username|default:"guest" }}</div>'
    )
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [tmp_path]}]
    settings.LOOKALIKE_CARD_TEMPLATE = "card.html"
    settings.LOOKALIKE_REUSE_CARDS = False
    url = f"/visual/similar/{catalogue[0].pk}/"
    assert grid(client.get(url)).count("guest") == 3
    client.force_login(django_user_model.objects.create_user("ada", password="x"))
    signed_in = client.get(url)
    assert card_renders(signed_in) == 3
    assert grid(signed_in).count("ada") == 3 and "guest" not in grid(signed_in)
    # Reused, the same template knows no shopper: it must not read one.
    settings.LOOKALIKE_REUSE_CARDS = True
    assert grid(client.get(url)).count("guest") == 3


def test_a_reused_card_stays_escaped(catalogue, client):
    Product.objects.filter(pk=catalogue[1].pk).update(title="<script>alert(1)</script>")
    url = f"/visual/similar/{catalogue[0].pk}/"
    for _ in range(2):  # rendered, then reused
        html = grid(client.get(url))
        assert "<script>alert(1)</script>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def product_reads(queries):
    return [q["sql"] for q in queries.captured_queries if 'FROM "shop_product"' in q["sql"]]


def test_a_find_similar_page_without_filters_reads_its_products_once(catalogue, client):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    url = f"/visual/similar/{catalogue[0].pk}/"
    client.get(url)  # the answer is searched and kept
    with CaptureQueriesContext(connection) as unfiltered:
        page = client.get(url)
    # The product and its look-alikes in one query; the search itself kept from before.
    assert len(product_reads(unfiltered)) == 1
    assert catalogue[0].title in page.content.decode()
    assert grid(page).count("data-product-id") == 3
    client.get(url + "?in_stock=on")
    with CaptureQueriesContext(connection) as filtered:
        client.get(url + "?in_stock=on")
    assert len(product_reads(filtered)) == 2  # the product, then the products that pass


def test_a_find_similar_page_is_a_404_for_a_product_not_shown(catalogue, client):
    url = f"/visual/similar/{catalogue[0].pk}/"
    assert client.get(url).status_code == 200  # its look-alikes are kept
    # Hidden by an update(), which moves no stamp: the kept answer still serves, but the
    # product read with it is not shown.
    Product.objects.filter(pk=catalogue[0].pk).update(is_active=False)
    assert client.get(url).status_code == 404
    assert client.get("/visual/similar/not-a-key/").status_code == 404
    assert client.get("/visual/similar/99999999/?min_price=abc").status_code == 404
