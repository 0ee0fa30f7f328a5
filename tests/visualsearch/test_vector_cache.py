"""The per-process copies of stored vectors (``visualsearch.services.vectors.VectorCache``):
they save the transfer of unchanged rows, are served without a query while the vectors'
stamp stands, and never once a write through the project (or the maximum age) says that
their row may have changed."""

import numpy as np
import pytest
from django.utils import timezone

from tests.recommendations.blend_support import (  # noqa: F401 (fixture)
    ENCODER,
    blend_environment,
    embed,
)
from visualsearch.models import ProductEmbedding
from visualsearch.services import vectors as vectors_module
from visualsearch.services.vectors import VectorCache, load_vectors, vectors_changed

pytestmark = pytest.mark.django_db


def unit(v):
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v)


@pytest.fixture
def stored(product_factory):
    products = [product_factory(title=f"P{i}") for i in range(3)]
    for i, p in enumerate(products):
        embed(p, [1.0, float(i), 0.0, 0.0])
    return products


def test_answers_as_load_vectors_and_reuses_unchanged_copies(stored):
    cache = VectorCache()
    ids = [p.pk for p in stored]
    first = cache.get(ids)
    expected = load_vectors(ids)
    assert set(first) == set(ids)
    for pid in ids:
        np.testing.assert_array_equal(first[pid], expected[pid])
    again = cache.get(ids)
    assert all(again[pid] is first[pid] for pid in ids)  # the copies, not a new read


def test_never_serves_a_re_embedded_vector(stored):
    cache = VectorCache()
    p = stored[0]
    before = cache.get([p.pk])[p.pk]
    row = ProductEmbedding.objects.get(product=p, encoder=ENCODER)
    row.embedding = unit([0.0, 0.0, 1.0, 0.0])
    row.computed_at = timezone.now()
    row.save()
    after = cache.get([p.pk])[p.pk]
    np.testing.assert_allclose(after, unit([0.0, 0.0, 1.0, 0.0]), rtol=1e-6)
    assert not np.allclose(after, before)


@pytest.fixture
def reads(monkeypatch):
    """The ids each database read of a VectorCache asked for."""
    calls = []
    real = vectors_module._read_changed

    def counting(ids, *args):
        calls.append(list(ids))
        return real(ids, *args)

    monkeypatch.setattr(vectors_module, "_read_changed", counting)
    return calls


def test_copies_checked_under_the_stamp_are_served_without_a_query(stored, reads):
    cache = VectorCache()
    ids = [p.pk for p in stored]
    cache.get(ids)
    assert reads == [ids]
    cache.get(ids[:2])
    assert reads == [ids]  # no second read
    cache.get([*ids, 10**9])  # an id without a vector is asked for, alone
    assert reads == [ids, [10**9]]
    vectors_changed()
    cache.get(ids)
    assert reads[-1] == ids  # checked again once the stamp moved


def test_a_raw_write_is_seen_after_vectors_changed_or_the_maximum_age(settings, stored):
    cache = VectorCache()
    p = stored[1]
    before = cache.get([p.pk])[p.pk]
    # A raw update sends no signal and leaves computed_at as it was.
    ProductEmbedding.objects.filter(product=p, encoder=ENCODER).update(
        embedding=unit([0.0, 0.0, 0.0, 1.0])
    )
    assert cache.get([p.pk])[p.pk] is before  # within the maximum age, under the stamp
    settings.VISUALSEARCH_VECTOR_CACHE_MAX_AGE = 0
    np.testing.assert_allclose(cache.get([p.pk])[p.pk], unit([0.0, 0.0, 0.0, 1.0]), rtol=1e-6)
    settings.VISUALSEARCH_VECTOR_CACHE_MAX_AGE = 60
    ProductEmbedding.objects.filter(product=p, encoder=ENCODER).update(
        embedding=unit([0.0, 1.0, 0.0, 0.0])
    )
    vectors_changed()
    # The row's version changed though computed_at did not: the new vector is sent.
    np.testing.assert_allclose(cache.get([p.pk])[p.pk], unit([0.0, 1.0, 0.0, 0.0]), rtol=1e-6)


def test_the_indexing_write_replaces_the_copies(stored):
    from visualsearch.indexing.store import upsert_vectors

    cache = VectorCache()
    p = stored[0]
    row = ProductEmbedding.objects.get(product=p, encoder=ENCODER)
    cache.get([p.pk])
    upsert_vectors(
        ENCODER,
        row.weights_hash,
        [(p.pk, row.image_name, row.image_checksum, row.product_category, row.product_price)],
        np.asarray([unit([0.0, 0.0, 1.0, 0.0])]),
        row.computed_at,  # the same time: only the stamp tells
    )
    np.testing.assert_allclose(cache.get([p.pk])[p.pk], unit([0.0, 0.0, 1.0, 0.0]), rtol=1e-6)


def test_deleted_products_and_other_weights_are_not_served(stored):
    cache = VectorCache()
    ids = [p.pk for p in stored]
    cache.get(ids)
    stored[2].delete()  # its vector goes with it
    assert set(cache.get(ids)) == {stored[0].pk, stored[1].pk}
    assert cache.get(ids, weights_hash="other weights") == {}
    ProductEmbedding.objects.filter(product=stored[1]).delete()
    vectors_changed()  # as the indexing's removals do
    assert set(cache.get(ids)) == {stored[0].pk}


def test_transform_is_kept_and_none_leaves_a_vector_out(stored):
    calls = []

    def first_two(v):
        calls.append(1)
        return None if v[1] > 0 else v[:2]

    cache = VectorCache(transform=first_two)
    ids = [p.pk for p in stored]
    out = cache.get(ids)
    assert set(out) == {stored[0].pk} and out[stored[0].pk].shape == (2,)
    cache.get(ids)
    assert len(calls) == 3  # transformed once per row read, not per call


def test_keeps_at_most_the_configured_number(settings, stored):
    settings.VISUALSEARCH_VECTOR_CACHE_SIZE = 2
    cache = VectorCache()
    out = cache.get([p.pk for p in stored])
    assert len(out) == 3 and len(cache.entries) == 2
    settings.VISUALSEARCH_VECTOR_CACHE_SIZE = 0
    assert len(cache.get([p.pk for p in stored])) == 3 and not cache.entries


def test_keys_of_any_text_form_survive_the_array_literal():
    from django.db import connection

    from visualsearch.services.vectors import _array_literal

    values = ["plain", 'with "quotes"', "back\\slash", "comma,{brace}", None, "NULL"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s::text[]", [_array_literal(values)])
        assert cursor.fetchone()[0] == values


def test_a_batch_of_failures_alone_takes_the_copies_of_its_vectors(stored):
    from visualsearch.encoders import get_encoder
    from visualsearch.indexing.pipeline import EmbeddedBatch
    from visualsearch.indexing.store import write_batch

    cache = VectorCache()
    ids = [p.pk for p in stored]
    cache.get(ids)
    # The product's image can no longer be read: its old vector goes, and no vector is
    # written in that batch.
    batch = EmbeddedBatch(
        images=[],
        vectors=np.zeros((0, 4), dtype=np.float32),
        failures=[(stored[0].pk, "x.png", "0" * 64, "unreadable")],
        skipped=0,
    )
    write_batch(get_encoder(ENCODER), batch)
    assert set(cache.get(ids)) == {stored[1].pk, stored[2].pk}


def test_transform_many_maps_each_read_at_once(stored):
    shapes = []

    def doubled(matrix):
        shapes.append(matrix.shape)
        return matrix * 2.0

    cache = VectorCache(transform_many=doubled)
    ids = [p.pk for p in stored]
    out = cache.get(ids)
    assert shapes == [(3, 4)]  # one call for the whole read
    expected = load_vectors(ids)
    for pid in ids:
        np.testing.assert_allclose(out[pid], expected[pid] * 2.0)
    cache.get(ids)
    assert shapes == [(3, 4)]  # the copies, not a second mapping
    row = ProductEmbedding.objects.get(product=stored[0], encoder=ENCODER)
    row.embedding = unit([0.0, 0.0, 1.0, 0.0])
    row.computed_at = timezone.now()
    row.save()
    again = cache.get(ids)
    assert shapes == [(3, 4), (1, 4)]  # only the re-embedded product is mapped again
    np.testing.assert_allclose(again[stored[0].pk], unit([0.0, 0.0, 1.0, 0.0]) * 2.0, rtol=1e-6)


def test_transform_and_transform_many_are_exclusive():
    with pytest.raises(ValueError, match="not both"):
        VectorCache(transform=lambda v: v, transform_many=lambda m: m)


def test_photo_reranking_reads_and_maps_its_candidates_once_per_projection(stored, reads):
    """Photo search's candidates come back search after search: their mapped vectors are
    kept per process, per projection (weights hash)."""
    from visualsearch.search import photo

    class Projection:
        def __init__(self, factor):
            self.factor, self.calls = factor, 0

        def rerank_vectors(self, matrix):
            self.calls += 1
            return matrix * self.factor

    weights = ProductEmbedding.objects.get(product=stored[0], encoder=ENCODER).weights_hash
    ids = [p.pk for p in stored]
    first = Projection(3.0)
    mapped = photo.reranked_vectors(first, ids, ENCODER, weights)
    expected = load_vectors(ids)
    for pid in ids:
        np.testing.assert_allclose(mapped[pid], expected[pid] * 3.0)
    photo.reranked_vectors(first, ids[:2], ENCODER, weights)
    assert first.calls == 1 and reads == [ids]  # no second read, no second mapping
    assert photo.reranked_vectors(first, ids, ENCODER, "other weights") == {}
