"""Writing a batch: its vectors and its failures, in one transaction (:func:`write_batch`).

The vectors go in with ``COPY`` in binary (:func:`upsert_vectors`).
``bulk_create(update_conflicts=True)`` sends every vector as text (about 12 KB of digits for
1280 dimensions) inside one huge ``INSERT``, which the server parses number by number: about
2,000 vectors a second here. The binary ``COPY`` protocol sends each vector as its 4-byte
floats, which the server copies as they are, so a reindex, a projection refit or a bulk
import of a large catalogue writes tens of thousands of vectors a second
(``bench/vector_writes.py``).

The rows of products that have no vector of this encoder yet are copied straight into the
vectors' table, in a savepoint, so each new vector is written once. Rows that exist are
copied into a staging table and moved with one ``INSERT ... ON CONFLICT (product, encoder)
DO UPDATE``, which updates them in place: writing the same batch twice leaves the same rows,
and an ``UPDATE`` of the copies or sign bits (``vector_index.sync_copies``,
``sign_bits.record_signs``) that waits on a row being re-written is applied to its new
version, not lost as it would be on a row deleted and inserted again. A product that got a
vector from another writer between the look-up and the copy makes the copy fail on the
unique key; the savepoint is rolled back and the whole batch takes the upsert, which
settles it. Copying new rows straight in instead of staging every batch wrote 1.20 times as
many new vectors a second, 1.33 times with their sign bits (``bench/vector_writes.py``,
10,000-row batches, medians of five runs).

The staging table is shaped like the vectors' table (``CREATE TEMP TABLE ... AS SELECT ...
WITH NO DATA``, so the product key is whatever type the host's product model uses: integers
or UUIDs), keeps its vectors inline (``STORAGE PLAIN``, up to 1,900 dimensions; out of line
but uncompressed above: floats do not compress, and a TOAST table would cost a chunk index
entry for every 2 kB) and is dropped before the transaction ends (``ON COMMIT DROP`` covers
an error on the way).

Each row is written with its sign bits when its weights have a centre
(:mod:`~visualsearch.services.sign_bits`; one lookup a batch), computed here with numpy and
copied in binary like the vector.
"""

from __future__ import annotations

import numpy as np
import psycopg
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from .. import products
from ..models import IndexFailure, ProductEmbedding
from ..services.sign_bits import centre_of, packed_signs
from ..services.vectors import vectors_changed

__all__ = [
    "BATCH_COLUMNS",
    "COLUMNS",
    "copy_rows",
    "upsert_vectors",
    "vector_binary",
    "write_batch",
]

#: The columns copied, one value a row, in ``COPY`` order; the encoder, the weights hash and
#: ``computed_at`` are the batch's (:data:`BATCH_COLUMNS`).
COLUMNS = (
    "product_id",
    "image_name",
    "image_checksum",
    "embedding",
    "product_category",
    "product_price",
    "signs",
)
BATCH_COLUMNS = ("encoder", "weights_hash", "computed_at")

#: The widest vector kept inline in the staging table (``STORAGE PLAIN``: a tuple must fit
#: in an 8 kB page); wider ones go out of line uncompressed.
_MAX_INLINE_DIM = 1900

_STAGE = "visualsearch_vector_stage"


def write_batch(enc, batch, also=None):
    """Upsert ``batch``'s vectors (an :class:`~.pipeline.EmbeddedBatch`, labelled with its
    ``weights`` or else the encoder's) and failures in one transaction.

    ``also(settled, failures)`` runs in that transaction with the number of products
    written and their ``(key, reason)`` failures: a chunk's progress, committed or rolled
    back with the rows.
    """
    now = timezone.now()
    weights = enc.weights_hash if batch.weights is None else batch.weights
    copies = products.copies([image.pk for image in batch.images])
    rows = [(pk, name, digest, *copies.get(pk, (None, None))) for pk, name, digest in batch.images]
    vectors = np.asarray(batch.vectors, dtype=np.float32).reshape(len(rows), enc.dim)
    failed = [
        IndexFailure(
            product_id=pk,
            encoder=enc.name,
            image_name=name,
            image_checksum=digest,
            reason=reason[:2000],
            failed_at=now,
        )
        for pk, name, digest, reason in batch.failures
    ]
    for attempt in range(2):
        try:
            with transaction.atomic():
                _upsert(enc.name, weights, rows, vectors, failed, now)
                if also is not None:
                    also(len(rows) + len(failed), [(f.product_id, f.reason) for f in failed])
            return
        except IntegrityError:
            # A product was deleted while its image was embedded: drop it and retry once.
            if attempt:
                raise
            alive = set(
                products.product_model()
                ._base_manager.filter(pk__in=[r[0] for r in rows] + [f.product_id for f in failed])
                .values_list("pk", flat=True)
            )
            keep = [i for i, row in enumerate(rows) if row[0] in alive]
            rows, vectors = [rows[i] for i in keep], vectors[keep]
            failed = [f for f in failed if f.product_id in alive]


def _upsert(encoder_name, weights_hash, rows, vectors, failed, now):
    """Write the vectors (:func:`upsert_vectors`, which also clears their products'
    failures) and the failures."""
    upsert_vectors(encoder_name, weights_hash, rows, vectors, now)
    if failed:
        IndexFailure.objects.bulk_create(
            failed,
            update_conflicts=True,
            unique_fields=["product", "encoder"],
            update_fields=["image_name", "image_checksum", "reason", "failed_at"],
        )
        # An old vector would show the product for an image it no longer has.
        removed, _ = ProductEmbedding.objects.filter(
            encoder=encoder_name, product_id__in=[f.product_id for f in failed]
        ).delete()
        if removed:
            vectors_changed()  # a batch of failures alone wrote no vector that said so
    # Deferred FK checks run now, inside the atomic block, so a vanished product is caught.
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")  # Django's default for its FKs


def vector_binary(vectors) -> list[memoryview]:
    """pgvector's binary form of each row of ``vectors`` (``n x dim``): the dimension and a
    reserved word as unsigned 16-bit integers, then the floats, all big-endian.

    The rows are views into one buffer built by numpy in a single pass (a bytes object per
    row took a third of the write's time at 10,000 vectors).
    """
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2:
        raise ValueError(f"Expected a 2-d array of vectors, got shape {vectors.shape}.")
    n, dim = vectors.shape
    layout = np.dtype([("dim", ">u2"), ("unused", ">u2"), ("values", ">f4", (dim,))])
    packed = np.zeros(n, dtype=layout)
    packed["dim"] = dim
    packed["values"] = vectors
    buffer = memoryview(packed.tobytes())
    width = layout.itemsize
    return [buffer[i * width : (i + 1) * width] for i in range(n)]


def _copy_types(cursor, table, columns):
    """The ``COPY`` types of ``table``'s ``columns``: their own, except the vector and its
    sign bits (``bytea``: their bytes are sent in the binary form of their own types, as
    :func:`vector_binary` and :func:`~visualsearch.services.sign_bits.packed_signs` made
    them, so pgvector's Python adapters need not be registered on Django's connection)."""
    cursor.execute(
        "SELECT attname, atttypid FROM pg_attribute WHERE attrelid = %s::regclass "
        "AND attnum > 0 AND NOT attisdropped",
        [table],
    )
    oids = dict(cursor.fetchall())
    return ["bytea" if name in ("embedding", "signs") else oids[name] for name in columns]


def copy_rows(cursor, table, columns, values):
    """``COPY`` ``values`` (one tuple a row, in ``columns``' order) into ``table`` in binary."""
    names = ", ".join(columns)
    types = _copy_types(cursor, table, columns)  # not once the COPY has started
    # Django wraps what ``execute()`` raises, not psycopg's ``copy()``: wrapped here, a lost
    # connection is Django's OperationalError, which the job machinery retries.
    with connection.wrap_database_errors:
        with cursor.copy(f"COPY {table} ({names}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(types)
            for row in values:
                copy.write_row(row)


def _copy_new(cursor, table, batch, values):
    """Copy the rows of products that have no vector of this encoder yet straight into the
    vectors' table, in a savepoint; False, with nothing written, when another writer
    inserted one of them meanwhile (the caller's upsert then settles it)."""
    try:
        with transaction.atomic():
            copy_rows(cursor, table, (*BATCH_COLUMNS, *COLUMNS), [(*batch, *v) for v in values])
        return True
    except IntegrityError as exc:
        if isinstance(exc.__cause__, psycopg.errors.UniqueViolation):
            return False
        raise


def _upsert_staged(cursor, table, batch, values, storage):
    """Copy ``values`` into a staging table and move them with one upsert; rows written."""
    columns = ", ".join(COLUMNS)
    updates = ", ".join(
        f"{c} = EXCLUDED.{c}" for c in (*BATCH_COLUMNS, *COLUMNS) if c != "product_id"
    )
    cursor.execute(
        f"CREATE TEMP TABLE {_STAGE} ON COMMIT DROP AS SELECT {columns} FROM {table} WITH NO DATA"
    )
    cursor.execute(f"ALTER TABLE {_STAGE} ALTER COLUMN embedding SET STORAGE {storage}")
    copy_rows(cursor, _STAGE, COLUMNS, values)
    cursor.execute(
        f"INSERT INTO {table} ({', '.join(BATCH_COLUMNS)}, {columns}) "
        f"SELECT %s, %s, %s, {columns} FROM {_STAGE} "
        f"ON CONFLICT (product_id, encoder) DO UPDATE SET {updates}",
        list(batch),
    )
    written = cursor.rowcount
    cursor.execute(f"DROP TABLE {_STAGE}")
    return written


def upsert_vectors(encoder_name, weights_hash, rows, vectors, computed_at) -> int:
    """Insert or replace the vectors of ``encoder_name`` for the products in ``rows``.

    Parameters
    ----------
    encoder_name, weights_hash : str
        Stored on every row (the weights that made the vectors).
    rows : list of tuple
        ``(product key, image name, image checksum, category copy, price copy)`` per
        vector, in the order of ``vectors``; keys must be distinct.
    vectors : array of shape (n, dim)
    computed_at : datetime
        The rows' ``computed_at``.

    Returns
    -------
    int
        The rows written, with their sign bits when these weights have a centre.
        Failures recorded for these products and this encoder are deleted in the same
        transaction: the product now has a vector.
    """
    if len(rows) != len(vectors):
        raise ValueError(f"{len(rows)} rows for {len(vectors)} vectors.")
    if not rows:
        return 0
    qn = connection.ops.quote_name
    table = qn(ProductEmbedding._meta.db_table)
    storage = "PLAIN" if np.shape(vectors)[1] <= _MAX_INLINE_DIM else "EXTERNAL"
    batch = (encoder_name, weights_hash, computed_at)
    keys = [row[0] for row in rows]
    with transaction.atomic(), connection.cursor() as cursor:
        signs = packed_signs(vectors, centre_of(encoder_name, weights_hash))
        values = [
            (pk, name, digest, data, category, price, bits)
            for (pk, name, digest, category, price), data, bits in zip(
                rows, vector_binary(vectors), signs, strict=True
            )
        ]
        cursor.execute(
            f"SELECT product_id FROM {table} WHERE encoder = %s AND product_id = ANY(%s)",
            [encoder_name, keys],
        )
        present = {pk for (pk,) in cursor.fetchall()}
        new = [v for v in values if v[0] not in present]
        written = 0
        if new and _copy_new(cursor, table, batch, new):
            written, values = len(new), [v for v in values if v[0] in present]
        if values:
            written += _upsert_staged(cursor, table, batch, values, storage)
        cursor.execute(
            f"DELETE FROM {qn(IndexFailure._meta.db_table)} "
            "WHERE encoder = %s AND product_id = ANY(%s)",
            [encoder_name, keys],
        )
        vectors_changed()
    return written
