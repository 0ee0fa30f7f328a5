"""Reading stored vectors fast: binary transfer straight into numpy.

Django's ``VectorField`` receives vectors as text and parses each of their 1,280 numbers
in Python, about half a millisecond per vector; the widgets read a hundred or more per
request. This reads them in PostgreSQL's binary format instead (a 4-byte header, then
big-endian float32), one ``np.frombuffer`` each.

They are read from a replica when the project has some (``lookalike.routing``).

The widgets read the same few thousand vectors again and again, and a vector changes only
when its product is embedded again. A :class:`VectorCache` (:func:`cached_vectors`, or one
of a caller's that keeps the vectors transformed) holds up to
``VISUALSEARCH_VECTOR_CACHE_SIZE`` of them per process (least recently used out first),
each with the ``computed_at`` of the row it came from and the transaction that wrote it
and where (``xmin``, ``ctid``: together its stamp). Every read still asks the database, in
one query, sending the stamps it holds, and gets back the vectors of the rows whose stamp
differs (written again; other weights are another key): a warm read moves a few bytes a
product instead of five kilobytes. Memory per process, not the shared cache: a request reads
hundreds of vectors, which would cost more to fetch and unpickle from Redis than from
PostgreSQL.

Even that check was a round trip and a few hundred index probes on every widget (2-5 ms of a
20 ms blend on a busy machine), for vectors that change only when a product is embedded
again. So the copies are also kept under a version stamp (:mod:`lookalike.stamps`,
:data:`VECTORS_STAMP`) that every write of vectors through this project bumps
(:func:`vectors_changed`: the indexing's writes and removals, a saved or deleted
``ProductEmbedding``, a deleted product): a read whose copies were all checked under the
current stamp, less than ``VISUALSEARCH_VECTOR_CACHE_MAX_AGE`` seconds ago, asks the
database nothing. A write that bypasses all of these (raw SQL from elsewhere) is seen
within that age, when each copy is checked again.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

import numpy as np
import psycopg
from psycopg.adapt import Loader
from psycopg.pq import Format

from lookalike import stamps
from lookalike.keys import native
from lookalike.routing import read_connection

from ..conf import app_settings
from ..models import ProductEmbedding

__all__ = [
    "VECTORS_STAMP",
    "VectorCache",
    "cached_vectors",
    "clear_vector_cache",
    "load_vectors",
    "vectors_changed",
]

#: The stamp the process's copies of vectors are kept under (see the module docstring).
VECTORS_STAMP = "visualsearch.vectors"


def vectors_changed():
    """Tell every process that stored vectors were written or removed: their copies are
    checked against the database at their next read. Called by whatever writes them."""
    stamps.bump(VECTORS_STAMP)


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
    encoder, weights_hash = _identity(encoder, weights_hash)
    rows = _read(
        f"SELECT product_id, embedding FROM {_table()} "
        "WHERE encoder = %s AND weights_hash = %s AND product_id = ANY(%s)",
        [encoder, weights_hash, ids],
    )
    return dict(rows)


class VectorCache:
    """A process's copies of stored vectors, checked against their rows on every read (see
    the module docstring).

    Parameters
    ----------
    transform : callable, optional
        Applied to each vector read from the database before it is kept (``None`` for a
        vector to leave out): a caller that normalises every vector it reads keeps the
        normalised ones. The copies are shared: read them, never write to them.
    transform_many : callable, optional
        Instead of ``transform``: applied once to the vectors of one read, stacked
        ``(n, dim)``, returning one row per vector; for a matrix product, which costs
        several times more row by row.
    """

    def __init__(self, transform=None, transform_many=None):
        if transform is not None and transform_many is not None:
            raise ValueError("Give transform or transform_many, not both.")
        self.transform = transform
        self.transform_many = transform_many
        self.lock = threading.Lock()
        # (encoder, weights hash, product id) -> (row stamp, value, stamp token checked under,
        # monotonic time checked)
        self.entries = OrderedDict()

    def clear(self):
        """Forget every copy (tests)."""
        with self.lock:
            self.entries.clear()

    def get(self, product_ids, encoder=None, weights_hash=None):
        """``{product id: vector}`` as :func:`load_vectors` answers (then ``transform``ed):
        from the copies checked under the current stamp, and in one query for the others,
        sending back only the vectors of rows that changed."""
        size = int(app_settings.VECTOR_CACHE_SIZE or 0)
        ids = list(dict.fromkeys(native(pid) for pid in product_ids))
        if not ids:
            return {}
        encoder, weights_hash = _identity(encoder, weights_hash)
        token = stamps.current(VECTORS_STAMP) if size > 0 else None
        oldest = time.monotonic() - float(app_settings.VECTOR_CACHE_MAX_AGE)
        out, known, to_check = {}, {}, []
        with self.lock:
            for pid in ids:
                entry = self.entries.get((encoder, weights_hash, pid))
                if entry is None:
                    to_check.append(pid)
                    continue
                stamp, value, checked_under, checked_at = entry
                if checked_under == token and checked_at >= oldest:
                    # Checked under the current stamp: answered without the database (a
                    # vector the transform left out stays out).
                    if value is not None:
                        out[pid] = value
                else:
                    known[pid] = (stamp, value)
                    to_check.append(pid)
        fresh, checked_at = {}, time.monotonic()
        if to_check:
            rows = list(_read_changed(to_check, encoder, weights_hash, known))
            values = self._transformed([row[-1] for row in rows if row[-1] is not None])
            for pid, *stamp, vector in rows:
                if vector is None:
                    if pid not in known:
                        continue
                    stamp, value = known[pid]
                else:
                    stamp = tuple(stamp)
                    value = next(values)
                fresh[pid] = (stamp, value, token, checked_at)
                if value is not None:
                    out[pid] = value
        self._keep(encoder, weights_hash, fresh, out, size)
        return out

    def _transformed(self, vectors):
        """The values to keep for ``vectors`` (read afresh), in order, as an iterator."""
        if self.transform_many is not None and vectors:
            return iter(self.transform_many(np.stack(vectors)))
        if self.transform is not None:
            return (self.transform(v) for v in vectors)
        return iter(vectors)

    def _keep(self, encoder, weights_hash, fresh, used, size):
        with self.lock:
            entries = self.entries
            for pid, entry in fresh.items():
                entries[(encoder, weights_hash, pid)] = entry
            for pid in used:
                key = (encoder, weights_hash, pid)
                if key in entries:
                    entries.move_to_end(key)
            while len(entries) > max(size, 0):
                entries.popitem(last=False)


_raw = VectorCache()


def cached_vectors(product_ids, encoder=None, weights_hash=None):
    """What :func:`load_vectors` answers, from the process's copies of the rows that have
    not changed since they were read (see the module docstring); one query either way.

    The vectors returned are shared with the cache: read them, never write to them.
    """
    return _raw.get(product_ids, encoder, weights_hash)


def clear_vector_cache():
    """Forget the process's copies (tests)."""
    _raw.clear()


#: A row's ``computed_at`` in whole microseconds: compared as integers, because 200
#: timestamps as parameters cost psycopg about 3 ms to dump, and integers next to nothing.
_STAMP = "(extract(epoch FROM e.computed_at) * 1000000)::int8"
#: Where and by which transaction the row's current version was written: it changes with
#: every write to the row, even one that leaves ``computed_at`` as it was (a raw ``UPDATE``,
#: or a bulk write that stamps its batch with a time chosen earlier), and even within one
#: transaction (each version of a row has its own ``ctid``). Kept beside the stamp, not
#: instead of it, so that neither alone decides that a copy is current.
_VERSION = "e.xmin::text || e.ctid::text"


def _read_changed(ids, encoder, weights_hash, known):
    """``(product id, stamp, version, vector or None)`` for every stored vector of ``ids``:
    ``None`` where ``known`` holds the row's stamp and version already."""
    product_field = ProductEmbedding._meta.get_field("product")
    key_type = product_field.db_type(read_connection(ProductEmbedding))
    if not known:
        return _read(
            f"SELECT e.product_id, {_STAMP}, {_VERSION}, e.embedding FROM {_table()} e "
            "WHERE e.encoder = %s AND e.weights_hash = %s "
            f"AND e.product_id = ANY(%s::{key_type}[])",
            [encoder, weights_hash, _array_literal(ids)],
        )
    # Driven by the ids, one index probe each; the stamps held ride along, so the vectors
    # of unchanged rows are compared in the database and never sent.
    return _read(
        f"SELECT e.product_id, {_STAMP}, {_VERSION}, "
        f"CASE WHEN c.stamp = {_STAMP} AND c.version = {_VERSION} THEN NULL "
        "ELSE e.embedding END "
        f"FROM unnest(%s::{key_type}[], %s::int8[], %s::text[]) AS c(product_id, stamp, version) "
        f"JOIN {_table()} e ON e.product_id = c.product_id "
        "WHERE e.encoder = %s AND e.weights_hash = %s",
        [
            _array_literal(ids),
            _array_literal(known[pid][0][0] if pid in known else None for pid in ids),
            _array_literal(known[pid][0][1] if pid in known else None for pid in ids),
            encoder,
            weights_hash,
        ],
    )


def _array_literal(values):
    """``values`` as one PostgreSQL array literal (``{"1","2",NULL}``), cast in the query.

    One string instead of a list: psycopg dumps a list element by element in Python, which
    for the three lists of a widget's read (ids, stamps, versions of 200 rows) cost more
    than the query itself. Every element is quoted, so any key's text form is safe.
    """
    return (
        "{"
        + ",".join(
            "NULL" if v is None else '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
            for v in values
        )
        + "}"
    )


def _identity(encoder, weights_hash):
    encoder = encoder or app_settings.ENCODER
    if weights_hash is None:
        from ..encoders import get_encoder

        weights_hash = get_encoder(encoder).weights_hash
    return encoder, weights_hash


def _table():
    return ProductEmbedding._meta.db_table


def _read(sql, params):
    """Run ``sql`` with the vectors in binary; all its rows."""
    connection = read_connection(ProductEmbedding)
    connection.ensure_connection()
    # Django's cursors bind parameters client-side, which cannot ask for binary results;
    # a plain psycopg cursor on the same connection (and transaction) can.
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.adapters.register_loader(_vector_oid(connection), _NumpyVectorLoader)
        cursor.execute(sql, params, binary=True)
        return cursor.fetchall()
