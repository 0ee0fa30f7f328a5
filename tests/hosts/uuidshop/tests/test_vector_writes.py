"""The binary ``COPY`` write path with UUID product keys: the staging table takes the key's
type from the host's model, and a re-write updates the same rows."""

import numpy as np
import pytest
from django.utils import timezone

pytestmark = pytest.mark.django_db


def test_vectors_of_uuid_products_are_written_and_rewritten_in_place(shop):
    from visualsearch.indexing.store import upsert_vectors
    from visualsearch.models import IndexFailure, ProductEmbedding

    items = shop["items"][:4]
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(4, 16)).astype(np.float32)
    rows = [(item.pk, f"{item.pk}.png", "c" * 64, None, 12.5) for item in items]
    IndexFailure.objects.create(
        product=items[0], encoder="copy-test", image_name="x", image_checksum="", reason="bad"
    )
    now = timezone.now()
    assert upsert_vectors("copy-test", "w1", rows, vectors, now) == 4
    first = dict(
        ProductEmbedding.objects.filter(encoder="copy-test").values_list("product_id", "id")
    )
    assert set(first) == {item.pk for item in items}
    assert not IndexFailure.objects.filter(encoder="copy-test").exists()

    later = timezone.now()
    assert upsert_vectors("copy-test", "w2", rows, vectors[::-1].copy(), later) == 4
    again = ProductEmbedding.objects.filter(encoder="copy-test")
    assert dict(again.values_list("product_id", "id")) == first  # updated in place
    assert set(again.values_list("weights_hash", "computed_at")) == {("w2", later)}
    stored = again.get(product_id=items[0].pk)
    assert np.array_equal(np.asarray(stored.embedding, dtype=np.float32), vectors[3])
    assert stored.product_price == 12.5 and stored.product_category is None
