"""The search planner decides from the probe alone, and every search says which plan
answered (what ``bench/similar_search.py`` counts)."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from visualsearch.search import Filters, PlanKind, Probe, choose_plan, search_with_plan
from visualsearch.search.planner import PlannerSettings
from visualsearch.services import vector_index

SETTINGS = PlannerSettings(
    exact_max_rows=2000,
    category_exact_max_rows=1500,
    category_indexes=True,
    ef_search=100,
    far_ef_search=300,
    max_scan_tuples=20000,
)


def probe(matching=None, indexed=True, category_indexed=False, on_copies=False):
    return Probe(indexed, category_indexed, matching, on_copies)


@pytest.mark.parametrize(
    "found, filters, kind",
    [
        (probe(), Filters(), PlanKind.HNSW),
        (probe(indexed=False), Filters(), PlanKind.EXACT_OVER_PRODUCTS),
        (probe(2001), Filters(in_stock=True), PlanKind.HNSW),
        (probe(2000), Filters(in_stock=True), PlanKind.EXACT_OVER_PRODUCTS),
        (probe(2000, on_copies=True), Filters(max_price=Decimal(9)), PlanKind.EXACT_OVER_COPIES),
        (probe(1501, category_indexed=True, on_copies=True), Filters(7), PlanKind.CATEGORY_HNSW),
        (
            probe(1500, category_indexed=True, on_copies=True),
            Filters(7),
            PlanKind.EXACT_OVER_COPIES,
        ),
        (probe(9999, indexed=False, on_copies=True), Filters(7), PlanKind.EXACT_OVER_COPIES),
    ],
)
def test_choose_plan_is_a_function_of_the_probe(found, filters, kind):
    plan = choose_plan(found, filters, SETTINGS)
    assert plan.kind == kind
    assert plan.category == (7 if kind == PlanKind.CATEGORY_HNSW else None)


@pytest.mark.django_db
def test_each_search_returns_the_plan_that_answered(catalogue, settings):
    product = catalogue[0]
    settings.VISUALSEARCH_EXACT_SEARCH_MAX_ROWS = 10**6
    cheap = search_with_plan(product_id=product.pk, k=4, filters=Filters(max_price=Decimal(30)))
    assert cheap.plan.kind == PlanKind.EXACT_OVER_COPIES and not cheap.fell_back
    assert cheap.probe.on_copies and cheap.probe.matching > 0
    stock = search_with_plan(product_id=product.pk, k=4, filters=Filters(in_stock=True))
    assert stock.plan.kind == PlanKind.EXACT_OVER_PRODUCTS
    settings.VISUALSEARCH_EXACT_SEARCH_MAX_ROWS = 0
    walk = search_with_plan(product_id=product.pk, k=4)
    assert walk.plan.kind == PlanKind.HNSW and walk.probe.matching is None
    assert [h.product_id for h in walk.hits] == [
        h.product_id for h in search_with_plan(product_id=product.pk, k=4).hits
    ]


@pytest.mark.django_db
def test_a_plan_that_comes_up_short_says_the_exact_plan_answered(catalogue, settings):
    """The copies' candidates all fail the product table (stale copies, stock): the exact
    plan over the products answers, and the result says so."""
    from visualsearch.models import ProductEmbedding

    settings.VISUALSEARCH_EXACT_SEARCH_MAX_ROWS = 10**6
    cheap = [p for p in catalogue[1:] if p.price <= 60]
    survivors = cheap[-2:]
    for p in cheap:
        p.stock = 5 if p in survivors else 0
        p.save()
    ProductEmbedding.objects.filter(product__in=survivors).update(product_price=1000.0)
    wanted = Filters(max_price=Decimal("60"), in_stock=True)
    result = search_with_plan(product_id=catalogue[0].pk, k=2, filters=wanted)
    assert result.plan.kind == PlanKind.EXACT_OVER_COPIES and result.fell_back
    assert sorted(h.product_id for h in result.hits) == sorted(p.pk for p in survivors)


@pytest.mark.django_db
def test_a_large_category_walks_its_own_graph(catalogue, settings):
    vector_index.ensure_category_indexes("pixel", 64, min_rows=5)
    settings.VISUALSEARCH_CATEGORY_EXACT_SEARCH_MAX_ROWS = 0
    category = catalogue[1].category_id
    with CaptureQueriesContext(connection) as queries:
        result = search_with_plan(
            product_id=catalogue[0].pk, k=3, filters=Filters(category_id=category)
        )
    assert result.plan.kind == PlanKind.CATEGORY_HNSW and result.plan.category == category
    assert result.probe.category_indexed
    probe_sql = queries.captured_queries[1]["sql"]  # after the savepoint
    assert "AS indexed" in probe_sql and "AS matching" in probe_sql
