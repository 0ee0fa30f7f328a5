"""Reading stored vectors fast: binary transfer straight into numpy.

Django's ``VectorField`` receives vectors as text and parses each of their 1,280 numbers
in Python, about half a millisecond per vector; the widgets read a hundred or more per
request. This reads them in PostgreSQL's binary format instead (a 4-byte header, then
big-endian float32), one ``np.frombuffer`` each.

They are read from a replica when the project has some (``lookalike.routing``).
"""

from __future__ import annotations

import numpy as np
import psycopg
from psycopg.adapt import Loader
from psycopg.pq import Format

from lookalike.keys import native
from lookalike.routing import read_connection

from ..conf import app_settings
from ..models import ProductEmbedding

__all__ = ["load_vectors"]


class _NumpyVectorLoader(Loader):
    """pgvector's binary ``vector``: int16 dimension, int16 unused, then float32 values."""

    format = Format.BINARY

    def load(self, data):
        return np.frombuffer(data, dtype=">f4", offset=4).astype(np.float32)


def _vector_oid(connection):
    # The extension's type oid differs between databases; ask once per connection.
    raw = connection.connection
    oid = getattr(raw, "_lookalike_vector_oid", None)
    if oid is None:
        with raw.cursor() as cursor:
            cursor.execute("SELECT 'vector'::regtype::oid")
            oid = cursor.fetchone()[0]
        raw._lookalike_vector_oid = oid
    return oid


def load_vectors(product_ids, encoder=None, weights_hash=None):
    """``{product id: float32 vector}`` of the products' stored embeddings.

    Products without a vector for ``encoder`` (default: the configured one) are absent, and
    so are vectors made by other weights than ``weights_hash`` (default: the encoder's
    current ones): stale vectors are never compared with current ones.
    """
    ids = [native(pid) for pid in product_ids]
    if not ids:
        return {}
    encoder = encoder or app_settings.ENCODER
    if weights_hash is None:
        from ..encoders import get_encoder

        weights_hash = get_encoder(encoder).weights_hash
    connection = read_connection(ProductEmbedding)
    connection.ensure_connection()
    table = ProductEmbedding._meta.db_table
    # Django's cursors bind parameters client-side, which cannot ask for binary results;
    # a plain psycopg cursor on the same connection (and transaction) can.
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.adapters.register_loader(_vector_oid(connection), _NumpyVectorLoader)
        cursor.execute(
            f"SELECT product_id, embedding FROM {table} "
            "WHERE encoder = %s AND weights_hash = %s AND product_id = ANY(%s)",
            [encoder, weights_hash, ids],
            binary=True,
        )
        return dict(cursor.fetchall())
