"""Vectors are written and searched only with the weights they were embedded with, and no
two reindexes (a job and a command, or a projection fit) overlap."""

import io

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from lookalike.jobs import locks
from lookalike.jobs import services as job_services
from lookalike.jobs.services import LockBusy
from tests.visualsearch.conftest import catalogue_image
from tests.visualsearch.encoders import PixelEncoder
from visualsearch import indexing
from visualsearch.models import ProductEmbedding
from visualsearch.search import NotIndexed, search_by_vector, similar_to_product

pytestmark = pytest.mark.django_db


def test_stale_vectors_are_never_searched(catalogue, pixel_encoder):
    """Vectors of other weights (a projection refitted since, a crash half-way through
    rewriting them) drop out of every search instead of being compared across spaces."""
    stale = catalogue[1:6]
    ProductEmbedding.objects.filter(product__in=stale).update(weights_hash="pixel-v0")
    query = np.asarray(ProductEmbedding.objects.get(product=catalogue[1]).embedding)
    hits = search_by_vector(query, k=29)
    assert {h.product_id for h in hits}.isdisjoint({p.pk for p in stale})
    assert len(hits) == 25  # every current vector
    with pytest.raises(NotIndexed):
        similar_to_product(catalogue[2].pk, k=5)
    assert {h.product_id for h in similar_to_product(catalogue[0].pk, k=10)}.isdisjoint(
        {p.pk for p in stale}
    )
    assert set(indexing.stale_products()) == {p.pk for p in stale}


class ChangingEncoder(PixelEncoder):
    """Its first batch fails as a whole, and while its images are retried one by one,
    another process refits the weights (v1 -> v2)."""

    weights_hash = "pixel-v2"

    def __init__(self):
        super().__init__()
        self.answers = iter([RuntimeError("out of memory"), "pixel-v1"])

    def embed_versioned(self, images):
        answer = next(self.answers, "pixel-v2")
        if isinstance(answer, Exception):
            raise answer
        return self.embed(images), answer


def test_a_batch_embedded_across_two_versions_is_not_stored(product_factory, pixel_encoder):
    """The weights change between two embedding calls of one batch: nothing of that batch
    is stored (mixed under one label), and the next pass, under one version, stores it."""
    products = [product_factory(image=catalogue_image(i)) for i in range(3)]
    encoder = ChangingEncoder()
    ids = [p.pk for p in products]
    counts = indexing.reindex("ids", ids=ids, encoder=encoder, batch_size=10)
    assert counts["embedded"] == 0 and not ProductEmbedding.objects.exists()
    counts = indexing.reindex("ids", ids=ids, encoder=encoder, batch_size=10)
    assert counts["embedded"] == 3
    assert set(ProductEmbedding.objects.values_list("weights_hash", flat=True)) == {"pixel-v2"}


def _other_session():
    import psycopg

    params = connection.get_connection_params()
    return psycopg.connect(**{k: v for k, v in params.items() if k != "cursor_factory"})


def test_a_reindex_command_never_runs_beside_a_reindex_job(product_factory, pixel_encoder):
    product_factory(image=catalogue_image(0))
    with _other_session() as worker:  # a worker running a reindex job holds its key
        worker.execute(
            "SELECT pg_advisory_lock(%s, %s)",
            locks.job_lock(indexing.LOCK_KEY),
        )
        with pytest.raises(LockBusy):
            indexing.reindex("stale")
        with pytest.raises(LockBusy):
            indexing.reindex_with_projection(encoder="pixel")
        with pytest.raises(CommandError, match="is running"):
            call_command("reindex", "--stale", stdout=io.StringIO(), stderr=io.StringIO())
        worker.execute(
            "SELECT pg_advisory_unlock(%s, %s)",
            locks.job_lock(indexing.LOCK_KEY),
        )
    assert indexing.reindex("stale")["embedded"] == 1  # free again


def test_the_lock_is_reentrant_inside_a_job(product_factory, pixel_encoder):
    product_factory(image=catalogue_image(0))
    with job_services.exclusive(indexing.LOCK_KEY):  # what run_job holds
        assert indexing.reindex("stale")["embedded"] == 1
