"""Centred sign bits: written with the vectors, taken around one centre per weights, and
the plan that ranks a far category filter by them."""

import io
from dataclasses import replace
from decimal import Decimal

import numpy as np
import pytest
from django.db import connection

from tests.visualsearch.test_planner import SETTINGS as PLANNER_SETTINGS
from tests.visualsearch.test_quality import labelled_catalogue, projected_encoder  # noqa: F401
from visualsearch import indexing
from visualsearch.indexing.store import upsert_vectors
from visualsearch.models import ProductEmbedding, VectorCentre
from visualsearch.search import Filters, PlanKind, Probe, choose_plan, search_with_plan
from visualsearch.services import sign_bits

SETTINGS = replace(PLANNER_SETTINGS, sign_bits_max_rows=20000, sign_bits_rerank=1000)


def probe(matching, *, category_indexed=True, signed=True, near=False, indexed=True):
    return Probe(indexed, category_indexed, matching, True, None, signed, near)


@pytest.mark.parametrize(
    "found, filters, kind",
    [
        # A far filter between the thresholds: ranked by sign bits, graph or no graph.
        (probe(1501), Filters(7), PlanKind.SIGN_BITS),
        (probe(2001, category_indexed=False), Filters(7, max_price=Decimal(9)), "sign_bits"),
        (probe(20000), Filters(7), PlanKind.SIGN_BITS),
        (probe(3000, category_indexed=False, indexed=False), Filters(7), PlanKind.SIGN_BITS),
        # A product of the filter's category: its graph (or the shared one) meets them first.
        (probe(1501, near=True), Filters(7), PlanKind.CATEGORY_HNSW),
        (probe(2001, category_indexed=False, near=True), Filters(7), PlanKind.HNSW),
        # Near is counted only to the exact thresholds: without any graph, exact.
        (
            probe(2000, category_indexed=False, near=True, indexed=False),
            Filters(7),
            PlanKind.EXACT_OVER_COPIES,
        ),
        (
            probe(2001, category_indexed=False, near=True, indexed=False),
            Filters(7),
            PlanKind.EXACT_OVER_COPIES,
        ),
        # Too many for the bits, no centre, or few enough to compare in full.
        (probe(20001), Filters(7), PlanKind.CATEGORY_HNSW),
        (probe(1501, signed=False), Filters(7), PlanKind.CATEGORY_HNSW),
        (probe(1500), Filters(7), PlanKind.EXACT_OVER_COPIES),
        (probe(2000, category_indexed=False), Filters(7), PlanKind.EXACT_OVER_COPIES),
        # A price band alone: the bits' btree starts with the category.
        (probe(5000, category_indexed=False), Filters(max_price=Decimal(9)), PlanKind.HNSW),
    ],
)
def test_the_planner_ranks_far_category_filters_by_sign_bits(found, filters, kind):
    plan = choose_plan(found, filters, SETTINGS)
    assert plan.kind == kind
    assert plan.rerank == (1000 if kind == PlanKind.SIGN_BITS else None)


def test_sign_bits_off_means_no_sign_bits_plan():
    off = replace(SETTINGS, sign_bits_max_rows=0)
    assert choose_plan(probe(1501), Filters(7), off).kind == PlanKind.CATEGORY_HNSW


def test_packed_signs_set_the_dimensions_above_the_centre():
    vectors = np.array([[0.5, -1.0, 2.0] + [0.0] * 6, [-1.0] * 9], dtype=np.float32)
    centre = np.zeros(9, dtype=np.float32)
    first, second = sign_bits.packed_signs(vectors, centre)
    assert first == b"\x00\x00\x00\x09" + bytes([0b10100000, 0])
    assert second == b"\x00\x00\x00\x09" + bytes(2)
    assert sign_bits.packed_signs(vectors, None) == [None, None]
    assert sign_bits.packed_signs(vectors, np.zeros(4)) == [None, None]  # another dimension


def stored_signs():
    return dict(ProductEmbedding.objects.values_list("product_id", "signs"))


@pytest.mark.django_db
def test_ensure_signs_takes_the_centre_once_and_fills_every_row(catalogue):
    weights = ProductEmbedding.objects.values_list("weights_hash", flat=True).first()
    assert sign_bits.ensure_signs("pixel", 64, weights, min_rows=30) == 0  # 30 vectors: too few
    assert not VectorCentre.objects.exists() and set(stored_signs().values()) == {None}

    assert sign_bits.ensure_signs("pixel", 64, weights, min_rows=5) == 30
    vectors = np.stack(
        [
            np.asarray(v, np.float32)
            for v in ProductEmbedding.objects.values_list("embedding", flat=True)
        ]
    )
    centre = sign_bits.centre_of("pixel", weights)
    np.testing.assert_allclose(centre, vectors.mean(axis=0), atol=1e-6)
    assert VectorCentre.objects.get().vectors == 30
    assert all(len(bits) == 64 for bits in stored_signs().values())
    assert sign_bits.ensure_signs("pixel", 64, weights, min_rows=5) == 0  # nothing left to do


@pytest.mark.django_db
def test_vectors_written_later_get_the_same_bits_as_the_database_computes(catalogue):
    """New vectors get their bits in Python (numpy) as they are copied in; they must be the
    bits pgvector's ``binary_quantize(vector - centre)`` gives, which rank the queries."""
    weights = ProductEmbedding.objects.values_list("weights_hash", flat=True).first()
    sign_bits.ensure_signs("pixel", 64, weights, min_rows=5)
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(len(catalogue), 64)).astype(np.float32)
    rows = [(p.pk, f"new-{p.pk}.png", "digest", p.category_id, float(p.price)) for p in catalogue]
    upsert_vectors("pixel", weights, rows, vectors, catalogue[0].created_at)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), count(*) FILTER (WHERE e.signs = binary_quantize("
            "e.embedding::vector(64) - c.centre::vector(64))::varbit) "
            "FROM visualsearch_productembedding e JOIN visualsearch_vectorcentre c "
            "ON c.encoder = e.encoder AND c.weights_hash = e.weights_hash"
        )
        assert cursor.fetchone() == (30, 30)
    # Weights without a centre: written without bits (filled in by the next ensure_signs).
    upsert_vectors("pixel", "other", rows[:2], vectors[:2], catalogue[0].created_at)
    assert [stored_signs()[p.pk] for p in catalogue[:2]] == [None, None]


@pytest.mark.django_db
def test_record_mean_keeps_the_first_centre(catalogue, settings):
    settings.VISUALSEARCH_EXACT_SEARCH_MAX_ROWS = 10
    assert not sign_bits.record_mean("pixel", "w", np.ones(64), 10)  # too few to need it
    assert sign_bits.record_mean("pixel", "w", np.ones(64), 11)
    assert not sign_bits.record_mean("pixel", "w", np.zeros(64), 11)
    np.testing.assert_array_equal(sign_bits.centre_of("pixel", "w"), np.ones(64))
    settings.VISUALSEARCH_SIGN_BITS = False
    assert not sign_bits.record_mean("pixel", "w2", np.ones(64), 11)


@pytest.fixture
def signed_catalogue(catalogue, settings):
    """The test catalogue with sign bits, and thresholds so low that a category filter (10
    products) is over them: what a catalogue of a million looks like to the planner."""
    weights = ProductEmbedding.objects.values_list("weights_hash", flat=True).first()
    sign_bits.ensure_signs("pixel", 64, weights, min_rows=5)
    settings.VISUALSEARCH_EXACT_SEARCH_MAX_ROWS = 2
    settings.VISUALSEARCH_CATEGORY_EXACT_SEARCH_MAX_ROWS = 2
    return catalogue


def exact(settings, **kwargs):
    """The same search answered exactly."""
    settings.VISUALSEARCH_EXACT_SEARCH_MAX_ROWS = 10**6
    settings.VISUALSEARCH_SIGN_BITS = False
    try:
        result = search_with_plan(**kwargs)
    finally:
        settings.VISUALSEARCH_EXACT_SEARCH_MAX_ROWS = 2
        settings.VISUALSEARCH_SIGN_BITS = True
    assert result.plan.kind in (PlanKind.EXACT_OVER_COPIES, PlanKind.EXACT_OVER_PRODUCTS)
    return [(h.product_id, round(h.score, 5)) for h in result.hits]


@pytest.mark.django_db
def test_a_far_category_filter_is_ranked_by_sign_bits(signed_catalogue, settings):
    query = signed_catalogue[0]
    far = signed_catalogue[1].category_id
    kwargs = {"product_id": query.pk, "k": 4, "filters": Filters(category_id=far)}
    result = search_with_plan(**kwargs)
    assert result.plan.kind == PlanKind.SIGN_BITS and not result.fell_back
    assert result.probe.signed and not result.probe.near and result.probe.matching == 10
    # Every product of the filter was re-ranked in full (1,000 >= 10): the exact answer.
    assert [(h.product_id, round(h.score, 5)) for h in result.hits] == exact(settings, **kwargs)

    # A photo (a query vector) of the same product: the planner cannot tell it is far.
    vector = np.asarray(ProductEmbedding.objects.get(product=query).embedding, np.float32)
    by_vector = search_with_plan(vector=vector, k=4, filters=Filters(category_id=far))
    assert by_vector.plan.kind == PlanKind.SIGN_BITS
    assert [h.product_id for h in by_vector.hits] == [h.product_id for h in result.hits]

    # A product of the filter's own category walks the graph instead.
    near = search_with_plan(product_id=query.pk, k=4, filters=Filters(query.category_id))
    assert near.probe.near and near.plan.kind == PlanKind.HNSW


@pytest.mark.django_db
def test_a_category_alone_with_its_own_graph_walks_it(signed_catalogue):
    """A category large enough for its own graph is not counted (counting to the bits'
    limit cost 4-5 ms at a million products): its graph answers; with a price band the
    filter is counted, and the bits rank it."""
    from visualsearch.services import vector_index

    vector_index.ensure_category_indexes("pixel", 64, min_rows=5)
    query, far = signed_catalogue[0], signed_catalogue[1].category_id
    alone = search_with_plan(product_id=query.pk, k=3, filters=Filters(category_id=far))
    assert alone.plan.kind == PlanKind.CATEGORY_HNSW
    assert alone.probe.matching > 20000  # taken as larger than every threshold
    banded = search_with_plan(
        product_id=query.pk, k=3, filters=Filters(category_id=far, max_price=Decimal(60))
    )
    in_band = [p for p in signed_catalogue if p.category_id == far and p.price <= 60]
    assert banded.plan.kind == PlanKind.SIGN_BITS
    assert banded.probe.matching == len(in_band) == 9


@pytest.mark.django_db
def test_the_sign_bits_plan_checks_the_product_table_and_falls_back(signed_catalogue, settings):
    """Few re-ranked and most of them out of stock: every hit passes the filter, and when
    fewer than k do, the exact plan answers."""
    settings.VISUALSEARCH_SIGN_BITS_RERANK = 3
    query, far = signed_catalogue[0], signed_catalogue[1].category_id
    wanted = Filters(category_id=far, in_stock=True, max_price=Decimal(60))
    result = search_with_plan(product_id=query.pk, k=3, filters=wanted)
    assert result.plan.kind == PlanKind.SIGN_BITS and result.plan.rerank == 3
    in_filter = {
        p.pk for p in signed_catalogue if p.category_id == far and p.stock and p.price <= 60
    }
    assert {h.product_id for h in result.hits} <= in_filter
    assert len(result.hits) == 3
    scores = [h.score for h in result.hits]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.django_db
def test_vectors_without_bits_are_never_missed_for_good(signed_catalogue, settings):
    """A category whose vectors have no bits yet (written by weights without a centre
    meanwhile) has no sign-bits candidates: the exact plan answers with full k."""
    far = signed_catalogue[1].category_id
    ProductEmbedding.objects.filter(product_category=far).update(signs=None)
    result = search_with_plan(
        product_id=signed_catalogue[0].pk, k=4, filters=Filters(category_id=far)
    )
    assert result.plan.kind == PlanKind.SIGN_BITS and result.fell_back
    assert len(result.hits) == 4


@pytest.mark.django_db
def test_reindex_and_vector_index_give_the_vectors_their_bits(catalogue, settings):
    from django.core.management import call_command

    settings.VISUALSEARCH_EXACT_SEARCH_MAX_ROWS = 5
    ProductEmbedding.objects.update(signs=None)
    VectorCentre.objects.all().delete()
    out = io.StringIO()
    call_command("vector_index", stdout=out)
    assert "Wrote the sign bits of 30 vectors." in out.getvalue()
    assert None not in stored_signs().values()
    # Vectors written again are written with their bits.
    ProductEmbedding.objects.filter(product=catalogue[0]).update(signs=None)
    indexing.reindex("all")
    assert None not in stored_signs().values()


@pytest.mark.django_db
def test_a_projection_refit_writes_every_vector_with_its_bits(
    projected_encoder,  # noqa: F811
    labelled_catalogue,  # noqa: F811
    settings,
):
    settings.VISUALSEARCH_EXACT_SEARCH_MAX_ROWS = 5
    labelled_catalogue(12)
    indexing.reindex_with_projection(pairs=0)
    weights = projected_encoder.weights_hash
    centre = VectorCentre.objects.get(encoder="pixelproj", weights_hash=weights)
    assert centre.vectors == 12
    rows = ProductEmbedding.objects.filter(encoder="pixelproj")
    assert rows.count() == 12 and not rows.filter(signs__isnull=True).exists()


@pytest.mark.django_db
def test_the_bits_choose_the_candidates(pixel_encoder, product_factory, category_factory, settings):
    """Fewer re-ranked than the filter holds, and the plan answers alone: the nearest come
    back only if the Hamming ranking put them among the candidates (a random choice of 5 of
    30 would hold the true 3 one time in 400)."""
    from visualsearch.services import vector_index

    here, there = category_factory(name="Here", slug="here"), category_factory(name="There")
    query = product_factory(category=there, price=Decimal(10))
    members = [product_factory(category=here, price=Decimal(10)) for _ in range(30)]
    rng = np.random.default_rng(5)
    q = rng.normal(size=64)
    near = q + 0.4 * np.linalg.norm(q) / 8 * rng.normal(size=(5, 64))
    vectors = np.vstack([q, near, rng.normal(size=(25, 64))]).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    products = [query, *members]
    rows = [(p.pk, f"v/{p.pk}.png", "d", p.category_id, 10.0) for p in products]
    weights = pixel_encoder.weights_hash
    vector_index.ensure_index("pixel", 64)
    upsert_vectors("pixel", weights, rows, vectors, query.created_at)
    sign_bits.ensure_signs("pixel", 64, weights, min_rows=5)
    settings.VISUALSEARCH_EXACT_SEARCH_MAX_ROWS = 2
    settings.VISUALSEARCH_CATEGORY_EXACT_SEARCH_MAX_ROWS = 2
    settings.VISUALSEARCH_SIGN_BITS_RERANK = 5

    result = search_with_plan(product_id=query.pk, k=3, filters=Filters(category_id=here.pk))
    assert result.plan.kind == PlanKind.SIGN_BITS and not result.fell_back
    similarity = vectors[1:] @ vectors[0]
    best = [members[i].pk for i in np.argsort(-similarity)[:3]]
    assert [h.product_id for h in result.hits] == best
