"""Similarity search: filters, both query plans, and the guarantee of k rows."""

import re
from decimal import Decimal

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.visualsearch.conftest import catalogue_image
from visualsearch import indexing
from visualsearch.imaging import open_image
from visualsearch.search import (
    Filters,
    Hit,
    NotIndexed,
    hydrate,
    search_by_images,
    search_by_vector,
    similar_to_product,
)
from visualsearch.services import vector_index

pytestmark = pytest.mark.django_db

EXACT = 10**6  # EXACT_SEARCH_MAX_ROWS that makes every search exact
INDEX = 0  # ... and one that sends every filtered search to the HNSW index


def ids(hits):
    return [h.product_id for h in hits]


def brute_force(catalogue, product, k, keep=lambda p: True):
    """The expected answer, computed in numpy from the encoder's vectors."""
    from visualsearch.encoders import get_encoder

    enc = get_encoder("pixel")
    others = [p for p in catalogue if p.pk != product.pk and p.is_active and keep(p)]
    vectors = enc.embed([open_image(p.image.path) for p in [product, *others]])
    scores = vectors[1:] @ vectors[0]
    order = sorted(range(len(others)), key=lambda i: (-scores[i], others[i].pk))
    return [others[i].pk for i in order[:k]]


@pytest.mark.parametrize("threshold", [EXACT, INDEX])
def test_both_plans_give_the_exact_neighbours(catalogue, settings, threshold):
    settings.VISUALSEARCH_EXACT_SEARCH_MAX_ROWS = threshold
    product = catalogue[0]
    hits = similar_to_product(product.pk, k=5)
    assert ids(hits) == brute_force(catalogue, product, 5)
    assert all(isinstance(h, Hit) and -1 <= h.score <= 1 for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    cheap = Filters(max_price=Decimal("30"))
    assert ids(similar_to_product(product.pk, k=5, filters=cheap)) == brute_force(
        catalogue, product, 5, keep=lambda p: p.price <= 30
    )


def test_self_and_inactive_products_never_appear(catalogue):
    product, hidden = catalogue[0], catalogue[3]
    hidden.is_active = False
    hidden.save()
    hits = similar_to_product(product.pk, k=29)
    assert len(hits) == 28
    assert product.pk not in ids(hits) and hidden.pk not in ids(hits)
    excluded = Filters(exclude_ids=(catalogue[1].pk, catalogue[2].pk))
    assert {catalogue[1].pk, catalogue[2].pk}.isdisjoint(
        ids(similar_to_product(product.pk, k=12, filters=excluded))
    )


def test_filters_are_applied(catalogue):
    product = catalogue[0]
    by_pk = {p.pk: p for p in catalogue}
    filters = Filters(
        category_id=product.category_id,
        min_price=Decimal("10"),
        max_price=Decimal("50"),
        in_stock=True,
    )
    hits = similar_to_product(product.pk, k=12, filters=filters)
    expected = [
        p
        for p in catalogue[1:]
        if p.category_id == product.category_id and 10 <= p.price <= 50 and p.stock > 0
    ]
    assert sorted(ids(hits)) == sorted(p.pk for p in expected)  # fewer than k exist: all
    assert all(by_pk[pk].category_id == product.category_id for pk in ids(hits))


def test_a_filter_far_from_the_query_still_gets_k_rows(catalogue, settings):
    """The HNSW walk stops short (tiny max_scan_tuples); the exact plan must answer."""
    settings.VISUALSEARCH_EXACT_SEARCH_MAX_ROWS = INDEX
    settings.VISUALSEARCH_EF_SEARCH = 1
    settings.VISUALSEARCH_MAX_SCAN_TUPLES = 1
    product = catalogue[0]
    other = catalogue[1].category_id  # another category than the query's
    with CaptureQueriesContext(connection) as queries:
        hits = similar_to_product(product.pk, k=8, filters=Filters(category_id=other))
    sql = [q["sql"] for q in queries.captured_queries]
    assert any("vector(64)) <=>" in s for s in sql), "the index plan was tried first"
    assert len(hits) == 8
    assert ids(hits) == brute_force(catalogue, product, 8, keep=lambda p: p.category_id == other)


def test_the_index_expression_matches_the_query(catalogue):
    """The query's expression must be the index's, or the planner could never use it."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_sort = off")  # tiny tables: btree + sort is cheap
        cursor.execute(
            "EXPLAIN SELECT product_id FROM visualsearch_productembedding e "
            "WHERE e.encoder = 'pixel' ORDER BY (e.embedding::vector(64)) <=> %s::vector(64) "
            "LIMIT 5",
            ["[" + ",".join(["0.125"] * 64) + "]"],
        )
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert vector_index.index_name("pixel", 64) in plan


def test_search_by_vector_and_images(catalogue, pixel_encoder):
    target = catalogue[5]
    [vector] = pixel_encoder.embed([open_image(target.image.path)])
    hits = search_by_vector(vector, k=3)
    assert ids(hits)[0] == target.pk and hits[0].score == pytest.approx(1.0, abs=1e-5)
    images = [open_image(p.image.path) for p in catalogue[6:9]]
    calls = pixel_encoder.calls
    results = search_by_images(images, k=4, filters=Filters(in_stock=True))
    assert pixel_encoder.calls == calls + 1  # one batch
    assert results[0][0].product_id == catalogue[6].pk
    assert catalogue[7].pk not in ids(results[1])  # out of stock
    assert results[2][0].product_id == catalogue[8].pk
    assert all(len(r) == 4 for r in results)
    with pytest.raises(ValueError, match="dimensions"):
        search_by_vector(np.ones(10, dtype=np.float32))
    with pytest.raises(ValueError, match="k must be"):
        search_by_vector(vector, k=0)


def test_not_indexed_and_hydrate(catalogue, product_factory):
    fresh = product_factory(image=catalogue_image(60))
    with pytest.raises(NotIndexed):
        similar_to_product(fresh.pk)
    hits = similar_to_product(catalogue[0].pk, k=4)
    pairs = hydrate(hits + [Hit(999999, 0.5)])
    assert [p.pk for p, _ in pairs] == ids(hits)
    assert [s for _, s in pairs] == [h.score for h in hits]
    with CaptureQueriesContext(connection) as queries:
        [p.category.name for p, _ in pairs]
    assert len(queries) == 0  # categories came with the products


def test_real_efficientnet_finds_the_same_garment(product_factory, settings, tmp_path):
    """One end-to-end run with the real encoder (torch eager, 1280-d, the migration's index)."""
    from shop.demo import fashion_mnist

    settings.VISUALSEARCH_ARTIFACT_DIR = tmp_path  # no projection fitted on another catalogue
    settings.VISUALSEARCH_ENCODER = "efficientnet_lite0"
    settings.VISUALSEARCH_RUNTIME = "torch"
    split = fashion_mnist.load_split("train")
    picked = fashion_mnist.stratified_indices(split.labels, 6, seed=3)
    products = []
    for n, i in enumerate(picked):
        image = fashion_mnist.to_image(split.images[i])
        import io

        from django.core.files.base import ContentFile

        buf = io.BytesIO()
        image.save(buf, format="PNG")
        products.append(product_factory(image=ContentFile(buf.getvalue(), name=f"f{n}.png")))
    counts = indexing.reindex("stale")
    assert counts["embedded"] == 6 and counts.get("index_created") is None
    [hits] = search_by_images([open_image(products[2].image.path)], k=3)
    assert hits[0].product_id == products[2].pk and hits[0].score > 0.99
    assert len(similar_to_product(products[0].pk, k=5)) == 5


@pytest.fixture
def category_indexes(catalogue, settings):
    """Every category of the catalogue (10 vectors each) gets its own HNSW graph."""
    names = vector_index.ensure_category_indexes("pixel", 64, min_rows=5)
    assert len(names) == 3
    return names


def test_category_indexes_are_listed_and_dropped_with_the_encoders(category_indexes):
    listed = {ix["name"]: ix for ix in vector_index.list_indexes()}
    assert set(category_indexes) <= set(listed)
    assert {listed[n]["category"] for n in category_indexes} == set(
        vector_index.category_sizes("pixel")
    )
    assert vector_index.ensure_category_indexes("pixel", 64, min_rows=5) == []  # all exist
    assert vector_index.drop_index("pixel", 64)
    assert not {ix["name"] for ix in vector_index.list_indexes()} & set(category_indexes)


@pytest.mark.parametrize("narrow", [False, True])
def test_a_category_with_its_own_graph_is_searched_there(
    catalogue, category_indexes, settings, narrow
):
    """Near or far from the query, always k rows, exactly the right ones at this size, and
    nothing outside the filter; the planner takes the category's index."""
    settings.VISUALSEARCH_CATEGORY_EXACT_SEARCH_MAX_ROWS = 0
    product = catalogue[0]
    for category in {p.category_id for p in catalogue}:
        filters = Filters(category_id=category, max_price=Decimal("60") if narrow else None)

        def keep(p, category=category):
            return p.category_id == category and (not narrow or p.price <= 60)

        with CaptureQueriesContext(connection) as queries:
            hits = similar_to_product(product.pk, k=6, filters=filters)
        sql = [q["sql"] for q in queries.captured_queries]
        assert any(f"e.product_category = {category}" in s for s in sql)
        assert ids(hits) == brute_force(catalogue, product, 6, keep=keep)
        search = next(s for s in sql if s.startswith("WITH") and "::halfvec(64)" in s)
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute("SET LOCAL enable_sort = off")  # tiny tables: btree + sort is cheap
            cursor.execute("EXPLAIN " + search)
            plan = "\n".join(row[0] for row in cursor.fetchall())
        assert vector_index.category_index_name("pixel", 64, category) in plan


def test_a_stale_category_copy_never_leaks(catalogue, category_indexes, settings):
    """The vectors' copy of the category only picks the graph; the product table decides."""
    from visualsearch.models import ProductEmbedding

    settings.VISUALSEARCH_CATEGORY_EXACT_SEARCH_MAX_ROWS = 0
    product, moved = catalogue[0], catalogue[1]
    target = catalogue[2].category_id
    assert moved.category_id != target
    ProductEmbedding.objects.filter(product=moved).update(product_category=target)
    hits = similar_to_product(product.pk, k=12, filters=Filters(category_id=target))
    assert sorted(ids(hits)) == sorted(p.pk for p in catalogue if p.category_id == target)


def test_saving_a_product_keeps_its_category_copy(catalogue):
    from visualsearch.models import ProductEmbedding

    product = catalogue[0]
    assert ProductEmbedding.objects.get(product=product).product_category == product.category_id
    product.category = catalogue[1].category
    product.save()
    assert ProductEmbedding.objects.get(product=product).product_category == product.category_id
    ProductEmbedding.objects.filter(product=product).update(product_category=None)
    assert vector_index.sync_copies("pixel") == 1
    assert ProductEmbedding.objects.get(product=product).product_category == product.category_id


@pytest.mark.parametrize("threshold", [EXACT, INDEX])
def test_a_search_is_two_statements(catalogue, settings, threshold):
    """Settings, count and checks in one statement, then the search; the product's vector
    is read in a sub-select, never sent to the client and back."""
    settings.VISUALSEARCH_EXACT_SEARCH_MAX_ROWS = threshold
    with CaptureQueriesContext(connection) as queries:
        similar_to_product(catalogue[0].pk, k=5, filters=Filters(max_price=Decimal("50")))
    sql = [q["sql"] for q in queries.captured_queries]
    statements = [s for s in sql if s.startswith(("SELECT", "WITH"))]
    assert len(statements) == 2, sql
    assert not any("embedding::text" in s for s in sql)


@pytest.mark.django_db
def test_load_vectors_reads_the_stored_vectors_in_binary(catalogue):
    from visualsearch.models import ProductEmbedding
    from visualsearch.services.vectors import load_vectors

    ids = [p.pk for p in catalogue[:5]]
    vectors = load_vectors(ids + [10**9], encoder="pixel")
    assert set(vectors) == set(ids)  # unknown products are absent
    for row in ProductEmbedding.objects.filter(product_id__in=ids, encoder="pixel"):
        got = vectors[row.product_id]
        assert got.dtype == np.float32 and got.shape == (64,)
        np.testing.assert_allclose(got, np.asarray(row.embedding, dtype=np.float32), rtol=1e-6)
    assert load_vectors([], encoder="pixel") == {}


def test_reindex_stale_catches_up_with_bulk_category_edits(catalogue):
    """``QuerySet.update()`` sends no signal; the routine ``reindex --stale`` repairs the
    vectors' category copy that the per-category indexes filter on."""
    from shop.models import Product
    from visualsearch import indexing
    from visualsearch.models import ProductEmbedding

    moved, target = catalogue[0], catalogue[1].category_id
    Product.objects.filter(pk=moved.pk).update(category_id=target)
    assert ProductEmbedding.objects.get(product=moved).product_category != target
    counts = indexing.reindex("stale")
    assert counts["copies_synced"] == 1 and counts["embedded"] == 0
    assert ProductEmbedding.objects.get(product=moved).product_category == target


def _statements(call):
    with CaptureQueriesContext(connection) as queries:
        result = call()
    return result, [q["sql"] for q in queries.captured_queries]


def test_a_selective_filter_is_scanned_on_the_vectors_copies(catalogue, settings):
    """Category + price band: one range scan of the copies' btree, checked against the
    product table, exactly the right answer."""
    settings.VISUALSEARCH_EXACT_SEARCH_MAX_ROWS = EXACT
    product = catalogue[0]
    category = catalogue[1].category_id
    band = Filters(category_id=category, min_price=Decimal("10"), max_price=Decimal("80"))

    def keep(p):
        return p.category_id == category and 10 <= p.price <= 80

    hits, sql = _statements(lambda: similar_to_product(product.pk, k=3, filters=band))
    assert ids(hits) == brute_force(catalogue, product, 3, keep=keep)
    [search] = [s for s in sql if s.startswith("WITH hits")]
    # The candidates are checked against the product table (the adapter's queryset).
    assert "e.product_price >= " in search and '"shop_product"' in search.split(") SELECT")[1]
    with connection.cursor() as cursor:
        # Statistics as autovacuum would have them: with none (a table the planner takes to
        # be empty) it may walk the encoder's own index instead.
        cursor.execute("ANALYZE visualsearch_productembedding")
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + search)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    # Which of the two copy btrees a table this small gets, and whether it is read through
    # a bitmap, is the planner's choice (statistics left by earlier tests change it).
    assert re.search(
        r"Index (Only )?Scan using visualsearch_emb_\w+ on visualsearch_productembedding e"
        r"|Bitmap Index Scan on visualsearch_emb_\w+",
        plan,
    ), plan
    # A price band alone uses the copies too (its own btree).
    cheap = Filters(max_price=Decimal("30"))
    hits, sql = _statements(lambda: similar_to_product(product.pk, k=4, filters=cheap))
    assert ids(hits) == brute_force(catalogue, product, 4, keep=lambda p: p.price <= 30)
    assert any("e.product_price <= " in s for s in sql if s.startswith("WITH hits"))


def test_a_stale_price_copy_never_leaks_and_never_costs_k(catalogue, settings):
    """Copies only choose candidates: a product whose copy says "in the band" but whose
    price is not stays out; candidates that fail the product table (out of stock here)
    send the search to the plan over the product table, which still finds k."""
    from visualsearch.models import ProductEmbedding

    settings.VISUALSEARCH_EXACT_SEARCH_MAX_ROWS = EXACT
    product = catalogue[0]
    outside = next(p for p in catalogue[1:] if p.price > 60)
    ProductEmbedding.objects.filter(product=outside).update(product_price=20.0)
    band = Filters(max_price=Decimal("60"))
    hits = similar_to_product(product.pk, k=12, filters=band)
    assert outside.pk not in ids(hits)
    assert ids(hits) == brute_force(catalogue, product, 12, keep=lambda p: p.price <= 60)

    # The only cheap products in stock have stale copies (outside the band); the others
    # are out of stock: the copies give no candidate that passes, the plan over the product
    # table finds both.
    cheap = [p for p in catalogue[1:] if p.price <= 60]
    survivors = cheap[-2:]
    for p in cheap:
        p.stock = 5 if p in survivors else 0
        p.save()
    ProductEmbedding.objects.filter(product__in=survivors).update(product_price=1000.0)
    wanted = Filters(max_price=Decimal("60"), in_stock=True)
    hits, sql = _statements(lambda: similar_to_product(product.pk, k=2, filters=wanted))
    assert sorted(ids(hits)) == sorted(p.pk for p in survivors)
    searches = [s for s in sql if s.startswith(("WITH", "SELECT e.product_id"))]
    assert len(searches) == 2, "the copies' candidates failed, the product-table plan answered"


def test_saving_or_bulk_editing_a_price_keeps_the_copy(catalogue):
    from shop.models import Product
    from visualsearch.models import ProductEmbedding

    product = catalogue[0]
    assert ProductEmbedding.objects.get(product=product).product_price == float(product.price)
    product.price = Decimal("123.45")
    product.save(update_fields=["price"])
    assert ProductEmbedding.objects.get(product=product).product_price == 123.45
    Product.objects.filter(pk=product.pk).update(price=Decimal("7.10"))
    counts = indexing.reindex("stale")
    assert counts["copies_synced"] == 1
    assert ProductEmbedding.objects.get(product=product).product_price == 7.1
