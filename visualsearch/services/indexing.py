"""Embedding the catalogue's images into ``ProductEmbedding`` rows.

A reindex is a list of product ids worked through in batches: each batch's images are read,
hashed, decoded and embedded together, and its vectors are upserted (``ON CONFLICT (product,
encoder) DO UPDATE``) in one committed transaction. A run that is killed therefore leaves
whole batches behind, and running it again (``--stale``, or a resumed job) carries on where
it stopped without embedding any product twice:

* ``stale`` works out what is missing or outdated from the database (no vector, another
  image name, other encoder weights) and, unless ``VISUALSEARCH_VERIFY_CHECKSUMS`` is off,
  from the image bytes (a file replaced in place);
* ``all`` re-embeds every vector computed before ``started_before`` (the job's start), so a
  resumed "all" skips what the first run finished;
* ``ids`` embeds the given products.

Images that cannot be read become ``IndexFailure`` rows and never stop a run; they are left
alone until the product's image changes. That includes images over
``VISUALSEARCH_MAX_CATALOGUE_PIXELS``, decompression bombs and whatever else a damaged file
makes a decoder raise: a run that stopped on one would stop on the same batch when resumed.
A batch holds its images as the encoders need them (:func:`open_catalogue_image`, under
2048 pixels a side), not at their full size.

On Celery workers a reindex job fans out (:func:`reindex_fanned_out`): the job works out the
same list of products, cut into chunks of ``VISUALSEARCH_INDEX_CHUNK_SIZE`` keys, and each
chunk (:func:`embed_chunk`) is a task that any worker may run, in committed batches as above.
A chunk may be delivered twice (its worker died); it then skips every product whose vector
(or failure) was written since the job started, so nothing is embedded twice, and it adds
to the job's progress in the transaction of each batch, so nothing is counted twice.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time

import numpy as np
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from lookalike.catalogue import IMAGE, get_adapter
from lookalike.jobs.services import exclusive

from .. import products
from ..conf import app_settings
from ..models import IndexFailure, ProductEmbedding
from . import vector_index, vector_writes

logger = logging.getLogger(__name__)

__all__ = [
    "MODES",
    "embed_chunk",
    "index_status",
    "open_catalogue_image",
    "reindex",
    "reindex_fanned_out",
    "reindex_with_projection",
    "stale_products",
    "supports_projection",
]

MODES = ("stale", "all", "ids")

#: The lock key of reindex jobs: one reindex (job or command) at a time, and a projection
#: is never fitted while vectors are written.
LOCK_KEY = "visualsearch.reindex"


def _holding_the_reindex_lock(func):
    """Run ``func`` holding :data:`LOCK_KEY` (re-entrant inside a reindex job); a command
    started while a job runs is refused (``LockBusy``) instead of racing it."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with exclusive(LOCK_KEY):
            return func(*args, **kwargs)

    return wrapper


def _encoder(encoder):
    from ..encoders import Encoder, get_encoder

    if isinstance(encoder, Encoder):
        return encoder
    return get_encoder(encoder)


def _tables():
    qn = connection.ops.quote_name
    return {
        "emb": qn(ProductEmbedding._meta.db_table),
        "fail": qn(IndexFailure._meta.db_table),
    }


#: The condition "the product has an image" on the catalogue rows ``p(pk, image)``.
_HAS_IMAGE = "p.image IS NOT NULL AND p.image <> ''"


def read_image_bytes(name) -> bytes:
    """The bytes of the catalogue image ``name``.

    Any failure of the storage (a missing file, a name it refuses as suspicious) is an
    ``OSError``, which the callers record as this image's failure, not the run's.
    """
    try:
        with get_adapter().open_image(name) as fh:
            return fh.read()
    except OSError:
        raise
    except Exception as exc:
        raise OSError(f"{type(exc).__name__}: {exc}") from exc


def open_catalogue_image(data):
    """Decode a catalogue image as the encoders get it, the same way as a shopper's photo
    (:func:`visualsearch.uploads.read_photo`): upright RGB reduced by an integer factor
    to no less than :data:`~visualsearch.imaging.WORKING_SIZE`, refused (``TooManyPixels``)
    above ``VISUALSEARCH_MAX_CATALOGUE_PIXELS``."""
    from ..imaging import WORKING_SIZE, open_image

    return open_image(data, min_side=WORKING_SIZE, max_pixels=app_settings.MAX_CATALOGUE_PIXELS)


def _decoding_failure(exc) -> str:
    """The ``IndexFailure`` reason for an image that did not decode."""
    from ..imaging import UnreadableImage

    if isinstance(exc, UnreadableImage):
        return str(exc)  # says what is wrong: too many pixels, not an image, truncated...
    return f"Cannot decode the image: {type(exc).__name__}: {exc}"


def checksum(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _state_rows(encoder_name):
    """``(pk, image name, weights hash, emb image name, emb checksum, failure image name,
    failure checksum)`` for every indexed product with an image, in key order."""
    t = _tables()
    catalogue, params = products.catalogue_sql()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p.pk, p.image, e.weights_hash, e.image_name, "
            "e.image_checksum, f.image_name, f.image_checksum "
            f"FROM ({catalogue}) p(pk, image) "
            f"LEFT JOIN {t['emb']} e ON e.product_id = p.pk AND e.encoder = %s "
            f"LEFT JOIN {t['fail']} f ON f.product_id = p.pk AND f.encoder = %s "
            f"WHERE {_HAS_IMAGE} ORDER BY p.pk",
            [*params, encoder_name, encoder_name],
        )
        return cursor.fetchall()


def stale_products(encoder=None, *, verify_checksums=None) -> list[int]:
    """Ids of the products whose vector for ``encoder`` is missing or outdated.

    Outdated means: computed by other weights, from an image of another name, or (with
    ``verify_checksums``, default ``VISUALSEARCH_VERIFY_CHECKSUMS``) from other bytes than
    the file holds now. Products whose current image already failed are not listed.
    """
    enc = _encoder(encoder)
    if verify_checksums is None:
        verify_checksums = app_settings.VERIFY_CHECKSUMS
    current = enc.weights_hash
    stale = []
    for pk, name, weights, e_name, e_sum, f_name, f_sum in _state_rows(enc.name):
        if e_name is None and f_name is None:
            stale.append(pk)
        elif e_name is not None and (weights != current or e_name != name):
            stale.append(pk)
        elif f_name is not None and f_name != name:
            stale.append(pk)
        elif verify_checksums:
            try:
                digest = checksum(read_image_bytes(name))
            except OSError:
                digest = ""  # unreadable now: stale if it was embedded, known if it failed
            if digest != (e_sum if e_name is not None else f_sum):
                stale.append(pk)
    return stale


def index_status(encoder=None) -> dict:
    """Counts for the admin: ``indexed + stale + missing + failed == total`` indexed
    products with an image, and ``no_image``, the products with none (never embedded).
    Reads the database only (no image files)."""
    enc = _encoder(encoder)
    t = _tables()
    catalogue, params = products.catalogue_sql()
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) FILTER (WHERE {_HAS_IMAGE}), "
            f"count(*) FILTER (WHERE {_HAS_IMAGE} AND e.id IS NOT NULL AND e.weights_hash = %s "
            "  AND e.image_name = p.image), "
            f"count(*) FILTER (WHERE {_HAS_IMAGE} AND e.id IS NOT NULL AND (e.weights_hash <> %s "
            "  OR e.image_name <> p.image)), "
            f"count(*) FILTER (WHERE {_HAS_IMAGE} AND e.id IS NULL AND f.image_name = p.image), "
            "count(*) FILTER (WHERE p.image IS NULL OR p.image = '') "
            f"FROM ({catalogue}) p(pk, image) "
            f"LEFT JOIN {t['emb']} e ON e.product_id = p.pk AND e.encoder = %s "
            f"LEFT JOIN {t['fail']} f ON f.product_id = p.pk AND f.encoder = %s",
            [enc.weights_hash, enc.weights_hash, *params, enc.name, enc.name],
        )
        total, indexed, stale, failed, no_image = cursor.fetchone()
    return {
        "indexed": indexed,
        "stale": stale,
        "missing": total - indexed - stale - failed,
        "failed": failed,
        "total": total,
        "no_image": no_image,
    }


def _all_products(encoder_name, started_before) -> list:
    """Indexed products with an image whose vector (or failure) predates ``started_before``."""
    t = _tables()
    catalogue, params = products.catalogue_sql()
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT p.pk FROM ({catalogue}) p(pk, image) "
            f"LEFT JOIN {t['emb']} e ON e.product_id = p.pk AND e.encoder = %s "
            f"LEFT JOIN {t['fail']} f ON f.product_id = p.pk AND f.encoder = %s "
            f"WHERE {_HAS_IMAGE} "
            "AND (e.id IS NULL OR e.computed_at < %s) "
            "AND (f.id IS NULL OR f.failed_at < %s) "
            "ORDER BY p.pk",
            [*params, encoder_name, encoder_name, started_before, started_before],
        )
        return [row[0] for row in cursor.fetchall()]


def without_image(limit=20) -> tuple[int, list]:
    """``(count, first keys)`` of the indexed products that have no image to embed: skipped
    by every reindex, and reported by it, so that a shop sees what it is missing."""
    catalogue, params = products.catalogue_sql()
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) OVER (), p.pk FROM ({catalogue}) p(pk, image) "
            "WHERE p.image IS NULL OR p.image = '' ORDER BY p.pk LIMIT %s",
            [*params, limit],
        )
        rows = cursor.fetchall()
    return (rows[0][0] if rows else 0), [pk for _, pk in rows]


def check_ids(ids) -> list:
    """The product keys ``ids`` parsed and sorted; ``ValueError`` names any that no indexed
    product has."""
    adapter = get_adapter()
    try:
        wanted = sorted({adapter.parse_pk(i) for i in ids or ()})
    except ValueError as exc:
        raise ValueError(f"Product ids must be keys of products: {exc}") from None
    if not wanted:
        raise ValueError("No product ids given.")
    found = set(adapter.get_indexed_queryset().filter(pk__in=wanted).values_list("pk", flat=True))
    missing = [i for i in wanted if i not in found]
    if missing:
        raise ValueError(f"No product with id {', '.join(map(str, missing))}.")
    return wanted


def _remove_orphans(encoder_name) -> int:
    """Forget vectors and failures of products that no longer have an image, or that the
    adapter no longer indexes."""
    t = _tables()
    catalogue, params = products.catalogue_sql()
    removed = 0
    with connection.cursor() as cursor:
        for table in (t["emb"], t["fail"]):
            cursor.execute(
                f"DELETE FROM {table} x WHERE x.encoder = %s AND NOT EXISTS ("
                f"SELECT 1 FROM ({catalogue}) p(pk, image) "
                f"WHERE p.pk = x.product_id AND {_HAS_IMAGE})",
                [encoder_name, *params],
            )
            removed += cursor.rowcount if table == t["emb"] else 0
    return removed


@_holding_the_reindex_lock
def reindex(
    mode="stale",
    ids=None,
    encoder=None,
    batch_size=None,
    progress=None,
    error=None,
    started_before=None,
    verify_checksums=None,
    build_index=True,
) -> dict:
    """Embed product images and store the vectors; see the module docstring for ``mode``.

    Parameters
    ----------
    mode : {"stale", "all", "ids"}
    ids : list of int
        With ``mode="ids"``; unknown ids raise ``ValueError`` before any work.
    encoder : str or Encoder, optional
        Defaults to ``VISUALSEARCH_ENCODER``.
    batch_size : int, optional
        Images embedded and committed together; ``VISUALSEARCH_INDEX_BATCH_SIZE``.
    progress : callable ``(done, total, message)``, optional
    error : callable ``(product_id, reason)``, optional
        Called for each image that cannot be embedded (it is also stored as an
        ``IndexFailure``).
    started_before : datetime, optional
        With ``mode="all"``: vectors computed at or after it are kept (a resumed run).
        Defaults to now.
    build_index : bool
        Create the encoder's HNSW index afterwards if it is missing.

    Returns
    -------
    dict
        ``mode``, ``encoder``, ``candidates``, ``embedded``, ``failed``, ``skipped``
        (products that lost their image meanwhile), ``removed`` (vectors of products
        without an image), ``seconds``.
    """
    t0 = time.monotonic()
    batch_size = int(batch_size or app_settings.INDEX_BATCH_SIZE)
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1.")
    enc, todo, counts = _prepare(mode, ids, encoder, started_before, verify_checksums)
    if progress:
        progress(0, len(todo), f"Embedding {len(todo)} product images with {enc.name}")
    for start in range(0, len(todo), batch_size):
        batch = todo[start : start + batch_size]
        embedded, failures, skipped = _embed_batch(enc, batch)
        counts["embedded"] += embedded
        counts["failed"] += len(failures)
        counts["skipped"] += skipped
        if error:
            for pk, reason in failures:
                error(pk, reason)
        if progress:
            done = start + len(batch)
            progress(done, len(todo), f"{done} of {len(todo)} images embedded")
    if build_index and counts["embedded"]:
        counts.update(_ensure_indexes(enc))
    counts["seconds"] = round(time.monotonic() - t0, 3)
    logger.info("visualsearch reindex: %s", counts)
    return counts


def _prepare(mode, ids, encoder, started_before, verify_checksums):
    """``(encoder, product keys to embed, counts)`` of a reindex: what :func:`reindex` and
    :func:`reindex_fanned_out` work through, after removing orphaned vectors and catching
    up the vectors' copies of category and price."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}.")
    enc = _encoder(encoder)
    vector_index.check_encoder_name(enc.name)
    conflicts = vector_index.conflicting_indexes(enc.name, enc.dim)
    if conflicts:
        raise ValueError(
            f"Encoder {enc.name} now has {enc.dim} dimensions but index {conflicts[0]} was "
            f"built for another size: run `manage.py vector_index --encoder {enc.name} "
            "--drop-stale` first."
        )
    if mode == "ids":
        todo = check_ids(ids)
        removed = 0
    else:
        removed = _remove_orphans(enc.name)
        if mode == "stale":
            todo = stale_products(enc, verify_checksums=verify_checksums)
        else:
            todo = _all_products(enc.name, started_before or timezone.now())
    # Bulk edits (QuerySet.update sends no signal) leave the vectors' copies of category and
    # price behind, which the category indexes and filter btrees use: catch up in one UPDATE.
    copies_synced = vector_index.sync_copies(enc.name) if mode == "stale" else 0
    counts = {
        "mode": mode,
        "encoder": enc.name,
        "candidates": len(todo),
        "embedded": 0,
        "failed": 0,
        "skipped": 0,
        "removed": removed,
        "copies_synced": copies_synced,
    }
    if mode != "ids":
        counts["no_image"], counts["no_image_ids"] = without_image()
    return enc, todo, counts


@_holding_the_reindex_lock
def reindex_fanned_out(
    fan_out,
    mode="stale",
    ids=None,
    encoder=None,
    chunk_size=None,
    progress=None,
    started_before=None,
    verify_checksums=None,
    build_index=True,
) -> dict:
    """:func:`reindex`, with the embedding spread over workers in chunks.

    Parameters
    ----------
    fan_out : callable ``(handler, chunks, **params)``
        Runs ``handler`` once per chunk of product keys and returns when all are done
        (``JobContext.fan_out``: Celery tasks, progress and errors added to the job row by
        the chunks themselves).
    chunk_size : int, optional
        Product keys per chunk; ``VISUALSEARCH_INDEX_CHUNK_SIZE``.

    Other parameters and the result are those of :func:`reindex`, plus ``chunks`` and
    ``deliveries`` (chunk tasks run: more than ``chunks`` when some ran again).
    ``embedded`` and ``failed`` are read back from the database (vectors and failures
    written since the start), so a chunk that ran twice is not counted twice.
    """
    t0 = time.monotonic()
    since = timezone.now()
    chunk_size = int(chunk_size or app_settings.INDEX_CHUNK_SIZE)
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1.")
    enc, todo, counts = _prepare(mode, ids, encoder, started_before, verify_checksums)
    if progress:
        progress(0, len(todo), f"Embedding {len(todo)} product images with {enc.name}")
    # Celery messages are JSON: integer keys stay integers, UUID keys travel as text.
    keys = [pk if isinstance(pk, int) else str(pk) for pk in todo]
    chunks = [keys[i : i + chunk_size] for i in range(0, len(keys), chunk_size)]
    fanned = fan_out(
        "visualsearch.services.jobs.reindex_chunk",
        chunks,
        encoder=enc.name,
        since=since.isoformat(),
    )
    written = _written_since(enc, todo, since)
    counts["embedded"] = len(written["embedded"])
    counts["failed"] = len(written["failed"])
    counts["skipped"] = max(len(todo) - counts["embedded"] - counts["failed"], 0)
    counts["chunks"] = len(chunks)
    counts["deliveries"] = (fanned or {}).get("deliveries", len(chunks))
    if build_index and counts["embedded"]:
        counts.update(_ensure_indexes(enc))
    counts["seconds"] = round(time.monotonic() - t0, 3)
    logger.info("visualsearch reindex (fanned out): %s", counts)
    return counts


def _written_since(enc, pks, since) -> dict:
    """``{"embedded": keys, "failed": keys}`` among ``pks``: vectors of ``enc``'s current
    weights, and failures, written at or after ``since``."""
    embedded = set(
        ProductEmbedding.objects.filter(
            encoder=enc.name,
            weights_hash=enc.weights_hash,
            product_id__in=pks,
            computed_at__gte=since,
        ).values_list("product_id", flat=True)
    )
    failed = set(
        IndexFailure.objects.filter(
            encoder=enc.name, product_id__in=pks, failed_at__gte=since
        ).values_list("product_id", flat=True)
    )
    return {"embedded": embedded, "failed": failed - embedded}


def embed_chunk(keys, encoder, since, batch_size=None, add=None) -> dict:
    """Embed the products ``keys`` of one chunk of a fanned-out reindex, in committed
    batches, skipping those whose vector or failure was written at or after ``since``
    (an earlier delivery of the same chunk did them).

    Parameters
    ----------
    keys : list
        Product keys, as the job's message carries them (text for UUID keys).
    encoder : str
    since : datetime
        When the job's reindex started.
    add : callable ``(done, errors)``, optional
        Called inside each batch's transaction with the products it settled and its
        ``(key, reason)`` failures (``ChunkContext.add``), so that progress is committed
        exactly with the work.

    Returns
    -------
    dict
        ``embedded``, ``failed``, ``skipped`` (done before, or deleted meanwhile).
    """
    adapter = get_adapter()
    enc = _encoder(encoder)
    batch_size = int(batch_size or app_settings.INDEX_BATCH_SIZE)
    pks = sorted(adapter.parse_pk(k) for k in keys)
    written = _written_since(enc, pks, since)
    done_before = written["embedded"] | written["failed"]
    pending = [pk for pk in pks if pk not in done_before]
    counts = {"embedded": 0, "failed": 0, "skipped": len(pks) - len(pending)}
    for start in range(0, len(pending), batch_size):
        embedded, failures, skipped = _embed_batch(
            enc, pending[start : start + batch_size], also=add
        )
        counts["embedded"] += embedded
        counts["failed"] += len(failures)
        counts["skipped"] += skipped
    return counts


def _ensure_indexes(enc):
    """Build the encoder's HNSW index and its per-category ones if missing; what was made."""
    made = {}
    name, created = vector_index.ensure_index(enc.name, enc.dim)
    made["index_created"] = name if created else None
    categories = vector_index.ensure_category_indexes(enc.name, enc.dim)
    if categories:
        made["category_indexes_created"] = categories
    return made


def supports_projection(encoder=None) -> bool:
    """Whether the encoder can learn a catalogue projection (see
    :mod:`visualsearch.encoders.projection`)."""
    return _encoder(encoder).supports_projection


@_holding_the_reindex_lock
def reindex_with_projection(
    encoder=None,
    batch_size=None,
    progress=None,
    error=None,
    gamma=None,
    build_index=True,
    pairs=None,
    seed=0,
) -> dict:
    """Fit the encoder's catalogue projection on the whole catalogue and re-embed it.

    Every product image is embedded once, without projection. Then ``pairs`` products,
    drawn with ``seed``, are photographed again the way a shopper would
    (:func:`visualsearch.distortions.distort` of their display-size photo) and embedded, to
    learn what such photos change; the projection is fitted on those pairs, the raw vectors
    and the products' own categories (the ``category`` entry of
    ``VISUALSEARCH_PRODUCT_FIELDS``) and saved where the encoder picks it up, which changes
    its ``weights_hash``; the same raw vectors, projected, are then written as the final
    vectors. So the catalogue is embedded once (plus the pairs), and ``reindex("stale")``
    afterwards finds nothing to do. Products without a category take no part in the
    category fit but are indexed all the same.

    The raw vectors of the whole catalogue are held in memory until the fit (5 KB per
    product for a 1280-d encoder: 500 MB for 100,000 products).

    Parameters
    ----------
    gamma : float, optional
        Weight of the category similarity, see
        :func:`visualsearch.encoders.projection.fit`.
    pairs : int, optional
        Products used to learn invariance to shopper photos (default
        ``VISUALSEARCH_PROJECTION_PAIRS``; 0 for none). They are recorded in the projection
        so that ``evaluate_visual`` measures robustness on other products only.
    seed : int
        Draws the pair products and their distortions: the same catalogue gives the same
        projection.

    Other parameters are those of :func:`reindex`.

    Returns
    -------
    dict
        As :func:`reindex` (``mode`` is ``"projection"``), plus ``projection`` (the file
        written), ``fitted_on`` (products with a category), ``categories`` and ``pairs``.

    Raises
    ------
    ValueError
        If the encoder has no projection, or fewer than two categories have products.
    """
    from ..encoders import projection as projections

    t0 = time.monotonic()
    enc = _encoder(encoder)
    if not supports_projection(enc):
        raise ValueError(f"Encoder {enc.name} does not support a learned projection.")
    vector_index.check_encoder_name(enc.name)
    batch_size = int(batch_size or app_settings.INDEX_BATCH_SIZE)
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1.")
    pairs = int(app_settings.PROJECTION_PAIRS if pairs is None else pairs)
    if pairs < 0:
        raise ValueError("pairs must not be negative.")
    removed = _remove_orphans(enc.name)
    todo = _all_products(enc.name, timezone.now())
    n_pairs = min(pairs, len(todo)) if pairs >= 2 else 0
    total = len(todo) + n_pairs
    if progress:
        progress(0, total, f"Embedding {len(todo)} product images with {enc.name}")
    batches, failures, skipped = [], [], 0
    for start in range(0, len(todo), batch_size):
        metas, vectors, failed, skipped_now = _read_and_embed(
            enc, todo[start : start + batch_size], enc.raw_embed
        )
        batches.append((metas, vectors))
        failures += failed
        skipped += skipped_now
        if error:
            for pk, _name, _digest, reason in failed:
                error(pk, reason)
        if progress:
            done = min(start + batch_size, len(todo))
            progress(done, total, f"{done} of {len(todo)} images embedded")
    pks = [meta[0] for metas, _ in batches for meta in metas]
    raw = np.concatenate([v for _, v in batches]) if batches else np.zeros((0, enc.dim))
    category_of = products.main_categories(pks)
    labelled = np.array([category_of.get(pk) is not None for pk in pks], dtype=bool)
    labels = np.array([category_of.get(pk) for pk in pks], dtype=object)[labelled]
    if len(set(labels.tolist())) < 2:
        raise ValueError(
            "Fitting a projection needs products with images in at least two categories."
        )

    def pair_progress(done):
        if progress:
            progress(
                len(todo) + done,
                total,
                f"shopper-style photos of {done} of {n_pairs} products embedded",
            )

    pair_kwargs = _shopper_photo_pairs(enc, pks, raw, n_pairs, seed, batch_size, pair_progress)
    kwargs = {} if gamma is None else {"gamma": float(gamma)}
    path = projections.fit_projection(
        raw[labelled], labels.astype(str), encoder=enc, **kwargs, **pair_kwargs
    )
    # The encoder now applies the new projection and reports its new weights_hash; each
    # batch is projected and labelled from one snapshot of it.
    for i, (metas, vectors) in enumerate(batches):
        projected, weights = enc.postprocess_versioned(vectors)
        _write(enc, metas, projected, failures if i == 0 else [], weights_hash=weights)
    if not batches:
        _write(enc, [], np.zeros((0, enc.dim), dtype=np.float32), failures)
    counts = {
        "mode": "projection",
        "encoder": enc.name,
        "candidates": len(todo),
        "embedded": len(pks),
        "failed": len(failures),
        "skipped": skipped,
        "removed": removed,
        "projection": str(path),
        "fitted_on": int(labelled.sum()),
        "categories": len(set(labels.tolist())),
        "pairs": len(pair_kwargs.get("pair_ids", ())),
    }
    counts["no_image"], counts["no_image_ids"] = without_image()
    if build_index and counts["embedded"]:
        counts.update(_ensure_indexes(enc))
    counts["seconds"] = round(time.monotonic() - t0, 3)
    logger.info("visualsearch reindex with projection: %s", counts)
    return counts


def _shopper_photo_pairs(enc, pks, raw, n, seed, batch_size, progress) -> dict:
    """The ``pairs``/``pair_ids`` arguments of the projection fit: the raw vectors of ``n``
    products drawn from ``pks`` (whose raw vectors are ``raw``) and of shopper-style photos of
    each one's display-size photo. Images that cannot be read again are left out; fewer than
    two usable pairs give ``{}`` (no invariance stage).

    Each product is photographed twice: once as the standard kind
    (:func:`visualsearch.distortions.distort`, the product filling the frame) and once as one
    of the harder kinds in turn (small on a textured surface, beside another of the drawn
    products, occluded, in low light, at an angle, heavily recompressed). A harder photo is
    seen as photo search sees it: the view of it (the whole photo or a region that
    :mod:`visualsearch.localisation` finds) that best frames the product, so the whitening
    learns what remains once the product has been found."""
    from ..distortions import KINDS, display_copy, distort

    if n < 2 or len(pks) < 2:
        return {}
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(pks), size=min(n, len(pks)), replace=False))
    names = products.image_names([pks[i] for i in chosen])
    size = int(enc.input_size)
    harder = [kind for kind in KINDS if kind != "standard"]
    # The images are read a second time rather than kept from the first pass: a shop's
    # photos can be many megapixels each, and a thousand of them would not fit in memory.
    rows, views, previous, count = [], [], None, 0
    for start in range(0, len(chosen), batch_size):
        images, kept = [], []
        for i in chosen[start : start + batch_size]:
            try:
                image = display_copy(open_catalogue_image(read_image_bytes(names[pks[i]])), size)
            except Exception:
                continue  # deleted, without an image or unreadable since the first pass
            kind = harder[count % len(harder)]
            images += [distort(image, rng), _as_searched(image, rng, kind, previous or image)]
            kept += [i, i]
            previous, count = image, count + 1
        vectors, bad = _embed(enc, images, enc.raw_embed)
        rows += [i for j, i in enumerate(kept) if j not in bad]
        views.append(vectors)
        progress(min(start + batch_size, len(chosen)))
    if len(rows) < 2:
        return {}
    rows = np.asarray(rows)
    return {
        "pairs": (raw[rows], np.concatenate(views)),
        "pair_ids": list(dict.fromkeys(pks[i] for i in rows)),
    }


def _as_searched(image, rng, kind, other):
    """A ``kind`` of shopper photo of ``image`` (:func:`visualsearch.distortions.shopper_photo`)
    cropped to the view of it that photo search would match the product with."""
    from ..distortions import shopper_photo
    from ..localisation import iou, views_of

    photo = shopper_photo(image, rng, kind, other)
    whole = (0, 0, *photo.image.size)
    return max(views_of(photo.image), key=lambda v: iou(v[0] or whole, photo.box))[1]


def _embed_batch(enc, batch, also=None):
    """Embed one batch of products and commit it; returns ``(embedded, failures, skipped)``.
    ``also(settled, failures)`` runs inside the batch's transaction (see :func:`_write`).

    Every vector is stored with the hash of the weights that made it
    (:meth:`~visualsearch.encoders.base.Encoder.embed_versioned`). Should the weights
    change in the middle of the batch (a projection refitted by another process), its
    vectors are not stored: they stay stale and the next pass embeds them again, rather
    than mixing two versions under one label.
    """
    versions = set()

    def embed(images):
        vectors, weights = enc.embed_versioned(images)
        versions.add(weights)
        return vectors

    metas, vectors, failures, skipped = _read_and_embed(enc, batch, embed)
    if len(versions) > 1:
        logger.warning("The encoder's weights changed during a batch; it stays stale.")
        return 0, [], skipped + len(metas)
    weights = versions.pop() if versions else enc.weights_hash
    _write(enc, metas, vectors, failures, weights_hash=weights, also=also)
    return len(metas), [(f[0], f[3]) for f in failures], skipped


def _read_and_embed(enc, batch, embed):
    """Read and embed one batch of products with ``embed`` (``enc.embed`` or
    ``enc.raw_embed``); returns ``(metas, vectors, failures, skipped)`` without writing."""
    rows = products.with_images().filter(pk__in=batch).order_by("pk").values_list("pk", IMAGE)
    images, metas, failures, skipped = [], [], [], 0
    for pk, name in rows:
        if not name:
            skipped += 1
            continue
        try:
            data = read_image_bytes(name)
        except OSError as exc:
            failures.append((pk, name, "", f"Cannot read the image file: {exc}"))
            continue
        digest = checksum(data)
        try:
            images.append(open_catalogue_image(data))
        except Exception as exc:  # MemoryError too: one image must not stop the job
            failures.append((pk, name, digest, _decoding_failure(exc)))
            continue
        finally:
            del data  # only the reduced image stays for the batch
        metas.append((pk, name, digest))
    skipped += len(batch) - len(rows)  # deleted meanwhile
    vectors, bad = _embed(enc, images, embed)
    for i in sorted(bad, reverse=True):
        pk, name, digest = metas.pop(i)
        failures.append((pk, name, digest, bad[i]))
    return metas, vectors, failures, skipped


def _embed(enc, images, embed=None):
    """Vectors for the images that embed; a batch that fails is retried image by image so
    that one bad image does not fail its neighbours. Returns ``(vectors, {index: reason})``."""
    embed = embed or enc.embed
    if not images:
        return np.zeros((0, enc.dim), dtype=np.float32), {}
    try:
        return _checked(enc, embed(images), len(images)), {}
    except Exception:
        logger.warning("Embedding a batch failed; retrying its images one by one.", exc_info=True)
    vectors, bad = [], {}
    for i, image in enumerate(images):
        try:
            vectors.append(_checked(enc, embed([image]), 1)[0])
        except Exception as exc:
            bad[i] = f"The encoder failed on this image: {type(exc).__name__}: {exc}"
    return np.asarray(vectors, dtype=np.float32).reshape(-1, enc.dim), bad


def _checked(enc, vectors, n):
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.shape != (n, enc.dim) or not np.all(np.isfinite(vectors)):
        raise ValueError(f"{enc.name} returned vectors of shape {vectors.shape} or non-finite.")
    return vectors


def _write(enc, metas, vectors, failures, weights_hash=None, also=None):
    """Upsert the batch's vectors and failures in one transaction; ``also(settled,
    failures)`` runs in it with the number of products written and their ``(key, reason)``
    failures (a chunk's progress, committed or rolled back with the rows)."""
    now = timezone.now()
    weights = enc.weights_hash if weights_hash is None else weights_hash
    copies = products.copies([pk for pk, _, _ in metas])
    rows = [(pk, name, digest, *copies.get(pk, (None, None))) for pk, name, digest in metas]
    vectors = np.asarray(vectors, dtype=np.float32).reshape(len(rows), enc.dim)
    failed = [
        IndexFailure(
            product_id=pk,
            encoder=enc.name,
            image_name=name,
            image_checksum=digest,
            reason=reason[:2000],
            failed_at=now,
        )
        for pk, name, digest, reason in failures
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
    """Write the vectors (binary ``COPY`` and one upsert: :mod:`.vector_writes`, which also
    clears their products' failures) and the failures."""
    vector_writes.upsert_vectors(encoder_name, weights_hash, rows, vectors, now)
    if failed:
        IndexFailure.objects.bulk_create(
            failed,
            update_conflicts=True,
            unique_fields=["product", "encoder"],
            update_fields=["image_name", "image_checksum", "reason", "failed_at"],
        )
        # An old vector would show the product for an image it no longer has.
        ProductEmbedding.objects.filter(
            encoder=encoder_name, product_id__in=[f.product_id for f in failed]
        ).delete()
    # Deferred FK checks run now, inside the atomic block, so a vanished product is caught.
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")  # Django's default for its FKs
