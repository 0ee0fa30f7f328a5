"""The binary ``COPY`` write path of vectors: exact values, idempotent re-writes, the
batch's labels and copies, the failures it clears, and what it refuses."""

import threading
import time
from datetime import timedelta

import numpy as np
import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from visualsearch.indexing import store
from visualsearch.indexing.store import upsert_vectors, vector_binary
from visualsearch.models import IndexFailure, ProductEmbedding

pytestmark = pytest.mark.django_db

DIM = 1280


def unit_vectors(n, seed=0, dim=DIM):
    vectors = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def rows_for(products, category=None, price=None):
    return [(p.pk, f"img/{p.pk}.png", "c" * 64, category, price) for p in products]


def stored(encoder="e1"):
    return {
        row.product_id: row
        for row in ProductEmbedding.objects.filter(encoder=encoder).order_by("product_id")
    }


def test_vectors_are_stored_bit_for_bit_with_the_batch_labels(product_factory):
    products = [product_factory() for _ in range(3)]
    vectors = unit_vectors(3)
    now = timezone.now()
    written = upsert_vectors("e1", "w1", rows_for(products, 7, 12.5), vectors, now)
    assert written == 3
    rows = stored()
    assert sorted(rows) == sorted(p.pk for p in products)
    for product, vector in zip(products, vectors, strict=True):
        row = rows[product.pk]
        assert np.array_equal(np.asarray(row.embedding, dtype=np.float32), vector)
        assert (row.weights_hash, row.image_name, row.image_checksum) == (
            "w1",
            f"img/{product.pk}.png",
            "c" * 64,
        )
        assert (row.product_category, row.product_price, row.computed_at) == (7, 12.5, now)


def test_writing_the_same_batch_twice_leaves_the_same_rows(product_factory):
    products = [product_factory() for _ in range(4)]
    vectors = unit_vectors(4)
    now = timezone.now()
    upsert_vectors("e1", "w1", rows_for(products), vectors, now)
    first = {pk: (r.id, list(r.embedding)) for pk, r in stored().items()}
    assert upsert_vectors("e1", "w1", rows_for(products), vectors, now) == 4
    again = {pk: (r.id, list(r.embedding)) for pk, r in stored().items()}
    assert again == first  # same rows (ids kept: updated in place), same values
    assert ProductEmbedding.objects.filter(encoder="e1").count() == 4


def other_connection():
    """A second session on the test database, in autocommit: another writer."""
    params = connection.get_connection_params()
    keys = ("dbname", "host", "port", "user", "password")
    return psycopg.connect(**{k: params[k] for k in keys if params.get(k)}, autocommit=True)


TABLE = ProductEmbedding._meta.db_table


@pytest.mark.django_db(transaction=True)
def test_a_row_another_writer_commits_before_the_copy_is_settled_by_the_upsert(
    product_factory, monkeypatch
):
    """New products' rows are copied straight in, unless another writer committed a row
    for one of them since the look-up: then the copy fails and the upsert writes them."""
    products = [product_factory() for _ in range(3)]
    vectors = unit_vectors(3)
    copy, tables = store.copy_rows, []

    def racing_copy(cursor, table, columns, values):
        tables.append(table)
        if len(tables) == 1:
            with other_connection() as other:
                other.execute(
                    f"INSERT INTO {TABLE} (encoder, weights_hash, computed_at, product_id, "
                    "image_name, image_checksum, embedding) "
                    "VALUES ('e1', 'other', now(), %s, 'x.png', '', %s::vector)",
                    [products[1].pk, vector_text(vectors[0])],
                )
        return copy(cursor, table, columns, values)

    monkeypatch.setattr(store, "copy_rows", racing_copy)
    assert upsert_vectors("e1", "w1", rows_for(products), vectors, timezone.now()) == 3
    assert [t.strip('"') for t in tables] == [TABLE, store._STAGE]  # the copy failed
    rows = stored()
    assert sorted(rows) == sorted(p.pk for p in products)
    assert {r.weights_hash for r in rows.values()} == {"w1"}
    for product, vector in zip(products, vectors, strict=True):
        assert np.array_equal(np.asarray(rows[product.pk].embedding, np.float32), vector)


@pytest.mark.django_db(transaction=True)
def test_an_update_waiting_on_a_rewritten_row_is_not_lost(product_factory, monkeypatch):
    """A re-write updates its rows in place, so a concurrent UPDATE of their copies (as
    ``sync_copies`` makes when a product is saved) waits and then applies to the new row."""
    products = [product_factory() for _ in range(2)]
    keys = [p.pk for p in products]
    vectors = unit_vectors(2)
    upsert_vectors("e1", "w1", rows_for(products, 1, 10.0), vectors, timezone.now())
    done = {}

    def update():
        with other_connection() as other:
            done["rows"] = other.execute(
                f"UPDATE {TABLE} SET product_price = 99 WHERE product_id = ANY(%s)", [keys]
            ).rowcount

    changed = store.vectors_changed

    def with_a_waiting_update():
        # Inside the write's transaction, its rows written: the UPDATE waits on their locks.
        thread = threading.Thread(target=update)
        thread.start()
        done["thread"] = thread
        deadline = time.monotonic() + 10
        with other_connection() as watcher:
            while (
                time.monotonic() < deadline
                and not watcher.execute(
                    "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query LIKE 'UPDATE%%product_price = 99%%'"
                ).fetchone()
            ):
                time.sleep(0.02)
        changed()

    monkeypatch.setattr(store, "vectors_changed", with_a_waiting_update)
    upsert_vectors("e1", "w2", rows_for(products, 1, 10.0), vectors[::-1].copy(), timezone.now())
    done["thread"].join(10)
    assert done["rows"] == 2
    rows = stored()
    assert [(rows[k].weights_hash, rows[k].product_price) for k in keys] == [("w2", 99.0)] * 2


def vector_text(vector):
    return "[" + ",".join(f"{x:.9g}" for x in vector) + "]"


def test_a_newer_write_replaces_vectors_labels_and_copies(product_factory):
    products = [product_factory() for _ in range(2)]
    then = timezone.now() - timedelta(hours=1)
    upsert_vectors("e1", "old", rows_for(products, 1, 1.0), unit_vectors(2, 0), then)
    newer = unit_vectors(2, 1)
    now = timezone.now()
    upsert_vectors("e1", "new", rows_for(products[:1], 2, 9.5), newer[:1], now)
    rows = stored()
    assert rows[products[0].pk].weights_hash == "new"
    assert rows[products[0].pk].computed_at == now
    assert (rows[products[0].pk].product_category, rows[products[0].pk].product_price) == (2, 9.5)
    assert np.array_equal(np.asarray(rows[products[0].pk].embedding, np.float32), newer[0])
    # The product left out of the second batch keeps its first vector and labels.
    assert (rows[products[1].pk].weights_hash, rows[products[1].pk].computed_at) == ("old", then)


def test_encoders_are_kept_apart_and_failures_of_written_products_cleared(product_factory):
    a, b = product_factory(), product_factory()
    for product in (a, b):
        IndexFailure.objects.create(
            product=product, encoder="e1", image_name="x.png", image_checksum="", reason="bad"
        )
    IndexFailure.objects.create(
        product=a, encoder="e2", image_name="x.png", image_checksum="", reason="bad"
    )
    upsert_vectors("e1", "w", rows_for([a]), unit_vectors(1), timezone.now())
    upsert_vectors("e2", "w", rows_for([b]), unit_vectors(1, 3, dim=64), timezone.now())
    assert set(IndexFailure.objects.values_list("product_id", "encoder")) == {
        (b.pk, "e1"),
        (a.pk, "e2"),
    }
    assert sorted(ProductEmbedding.objects.values_list("product_id", "encoder")) == sorted(
        [(a.pk, "e1"), (b.pk, "e2")]
    )


def test_wide_vectors_and_empty_batches(product_factory):
    product = product_factory()
    wide = unit_vectors(1, dim=3000)  # too wide to stage inline: staged out of line
    assert upsert_vectors("wide", "w", rows_for([product]), wide, timezone.now()) == 1
    row = ProductEmbedding.objects.get(encoder="wide")
    assert np.array_equal(np.asarray(row.embedding, np.float32), wide[0])
    assert upsert_vectors("wide", "w", [], np.zeros((0, 3000), np.float32), timezone.now()) == 0


def test_the_staging_table_does_not_outlive_the_write(product_factory):
    product = product_factory()
    upsert_vectors("e1", "w", rows_for([product]), unit_vectors(1), timezone.now())
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('visualsearch_vector_stage')")
        assert cursor.fetchone()[0] is None
    # A second write in the same transaction creates it afresh.
    assert upsert_vectors("e1", "w", rows_for([product]), unit_vectors(1, 2), timezone.now()) == 1


def test_mismatched_or_malformed_input_is_refused(product_factory):
    product = product_factory()
    with pytest.raises(ValueError, match="1 rows for 2 vectors"):
        upsert_vectors("e1", "w", rows_for([product]), unit_vectors(2), timezone.now())
    with pytest.raises(ValueError, match="2-d array"):
        vector_binary(np.zeros(DIM, dtype=np.float32))
    assert not ProductEmbedding.objects.exists()


def test_binary_form_is_pgvectors():
    """The dimension and a zero word, then big-endian floats: what ``vector_recv`` reads."""
    (data,) = vector_binary(np.array([[1.0, -2.5]], dtype=np.float32))
    assert bytes(data) == b"\x00\x02\x00\x00" + np.array([1.0, -2.5], dtype=">f4").tobytes()
