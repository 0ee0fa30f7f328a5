"""Centred sign bits: one bit a dimension, for filters too selective for a graph.

A filter that lets through a few thousand to a few tens of thousands of products, in a
category far from the query, is the hard case of a large catalogue: a graph walk meets too
few of those products (recall 0.72 in the category's own graph at a million products), and
comparing every one of them in full reads a wide row a product (63-112 ms p95 for 10,000 of
a million). The sign bits of each vector minus the mean of its encoder's vectors (160 bytes
for 1280 dimensions) sit in a covering btree beside the copies of category and price
(:class:`~visualsearch.models.ProductEmbedding`), so the filter becomes an index-only range
scan with a Hamming distance a row (about 0.4 µs); the nearest ``SIGN_BITS_RERANK`` are then
compared in full. Measured at a million products through the shop's own search
(``bench/similar_search.py --rows 1000000``, a far filter of 10,000 products): recall@10
0.9795 in 16.5-16.8 ms p95 of database time with 2,000 re-ranked, where the category's own
graph found 0.6455.

The bits are taken around the *mean* because these features are not centred: the plain signs
(pgvector's ``binary_quantize``, which compares with zero) are much the same for every product
and found 0.67-0.78 of the neighbours where the centred ones found 0.87 with as few re-ranked.

Each set of weights gets its centre once (:class:`~visualsearch.models.VectorCentre`) and
keeps it, so every stored bit of those weights stays comparable with a query's:

* a projection refit knows all its vectors before writing them and records their mean first
  (:func:`record_mean`), so every vector is written with its bits;
* otherwise :func:`ensure_signs`, run at the end of ``reindex`` and by ``manage.py
  vector_index`` before they build missing graphs, takes the mean of the stored vectors
  once there are more than ``EXACT_SEARCH_MAX_ROWS`` of them (smaller catalogues never need
  the plan) and fills in the bits of rows written before;
* from then on every write computes its bits (:func:`packed_signs`, in
  :mod:`visualsearch.indexing.store`).

A row without bits is only missing from the candidates of this plan: the search checks
every result against the product table and answers exactly when the plan comes up short.
"""

from __future__ import annotations

import struct

import numpy as np
from django.db import connection, transaction

from ..conf import app_settings
from ..models import ProductEmbedding, VectorCentre
from .vector_index import check_encoder_name, encoder_literal, fire_deferred_checks

__all__ = ["centre_of", "ensure_signs", "packed_signs", "record_mean"]


def centre_of(encoder_name, weights_hash) -> np.ndarray | None:
    """The centre of ``encoder_name``'s vectors made by ``weights_hash``, or ``None``."""
    centre = (
        VectorCentre.objects.filter(encoder=encoder_name, weights_hash=weights_hash)
        .values_list("centre", flat=True)
        .first()
    )
    return None if centre is None else np.asarray(centre, dtype=np.float32)


def record_mean(encoder_name, weights_hash, mean, count) -> bool:
    """Record ``mean``, taken over ``count`` vectors (the whole catalogue's), as the centre
    of these weights unless they have one; True if it was recorded. Too few vectors (at most
    ``EXACT_SEARCH_MAX_ROWS``) record nothing, as in :func:`ensure_signs`."""
    check_encoder_name(encoder_name)
    if not app_settings.SIGN_BITS or count <= app_settings.EXACT_SEARCH_MAX_ROWS:
        return False
    _, created = VectorCentre.objects.get_or_create(
        encoder=encoder_name,
        weights_hash=weights_hash,
        defaults={"centre": np.asarray(mean, dtype=np.float32), "vectors": int(count)},
    )
    return created


def packed_signs(vectors, centre) -> list[bytes | None]:
    """The sign bits of each row of ``vectors`` around ``centre``, in PostgreSQL's binary
    form of ``bit varying`` (the length in bits as a big-endian 32-bit integer, then the
    bits, first dimension in the highest bit), as pgvector's ``binary_quantize(v - centre)``
    writes them; ``None`` for every row when there is no centre of their dimension."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if centre is None or vectors.ndim != 2 or vectors.shape[1] != len(centre):
        return [None] * len(vectors)
    dim = vectors.shape[1]
    bits = np.packbits(vectors - centre > 0, axis=1)
    header = struct.pack(">I", dim)
    return [header + row.tobytes() for row in bits]


def ensure_signs(encoder_name, dim, weights_hash, *, min_rows=None) -> int:
    """Give the vectors of ``encoder_name`` made by ``weights_hash`` their sign bits; returns
    the rows given bits.

    The centre is the mean of those vectors, taken once there are more than ``min_rows``
    (``EXACT_SEARCH_MAX_ROWS``) of them. The rows that have no bits yet (written before the
    centre, or by a writer that read no centre) get them in one ``UPDATE``. The bits are in
    an index, so that update writes a new version of each row, which every index takes in
    again, the HNSW graphs included (a few hundred rows a second): callers run it before
    they build missing graphs, a refit records its centre before writing
    (:func:`record_mean`), and a large catalogue that already has its graphs is best given
    its bits by ``manage.py vector_index --rebuild`` (drop, bits, build). Does nothing when
    ``VISUALSEARCH_SIGN_BITS`` is off.
    """
    if not app_settings.SIGN_BITS:
        return 0
    min_rows = app_settings.EXACT_SEARCH_MAX_ROWS if min_rows is None else int(min_rows)
    table = connection.ops.quote_name(ProductEmbedding._meta.db_table)
    centres = connection.ops.quote_name(VectorCentre._meta.db_table)
    stored = f"e.encoder = {encoder_literal(encoder_name)} AND e.weights_hash = %s"
    dim = int(dim)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {centres} (encoder, weights_hash, centre, vectors, computed_at) "
            f"SELECT %s, %s, avg(e.embedding::vector({dim})), count(*), now() "
            f"FROM {table} e WHERE {stored} HAVING count(*) > %s "
            "ON CONFLICT (encoder, weights_hash) DO NOTHING",
            [encoder_name, weights_hash, weights_hash, min_rows],
        )
        cursor.execute(
            f"UPDATE {table} e SET signs = binary_quantize(e.embedding::vector({dim}) - "
            f"c.centre::vector({dim}))::varbit FROM {centres} c WHERE {stored} "
            "AND e.signs IS NULL AND c.encoder = e.encoder AND c.weights_hash = e.weights_hash",
            [weights_hash],
        )
        signed = cursor.rowcount
        fire_deferred_checks(cursor)
        if signed:
            # Fresh statistics, so the planner knows the covering btree holds these rows
            # (with none, it reads them through the copies' btree and the table instead).
            cursor.execute(f"ANALYZE {table}")
        return signed
