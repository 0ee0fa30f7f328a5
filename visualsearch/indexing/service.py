"""The reindex entry points: :func:`reindex` in this process, :func:`reindex_fanned_out`
over Celery workers, each chunk of which is :func:`embed_chunk`.

Every reindex holds :data:`LOCK_KEY`, so that only one runs at a time (job or command) and
a projection is never fitted while vectors are written.
"""

from __future__ import annotations

import functools
import logging
import time

from django.utils import timezone

from lookalike.catalogue import get_adapter
from lookalike.jobs.services import exclusive

from ..conf import app_settings
from ..models import IndexFailure, ProductEmbedding
from ..services import sign_bits, vector_index
from .pipeline import checked_batch_size, embedded_batches, embedding_message
from .report import Report
from .state import (
    all_products,
    check_ids,
    remove_orphans,
    resolve_encoder,
    stale_products,
    without_image,
)
from .store import write_batch

logger = logging.getLogger(__name__)

MODES = ("stale", "all", "ids")

#: The lock key of reindex jobs: one reindex (job or command) at a time, and a projection
#: is never fitted while vectors are written.
LOCK_KEY = "visualsearch.reindex"

#: The chunk handler of a fanned-out reindex, by the package's name for it, which stays
#: the same wherever the function lives (:mod:`.jobs`).
CHUNK_HANDLER = "visualsearch.indexing.reindex_chunk"


def holding_the_reindex_lock(func):
    """Run ``func`` holding :data:`LOCK_KEY` (re-entrant inside a reindex job); a command
    started while a job runs is refused (``LockBusy``) instead of racing it."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with exclusive(LOCK_KEY):
            return func(*args, **kwargs)

    return wrapper


@holding_the_reindex_lock
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
    """Embed product images and store the vectors; see :mod:`visualsearch.indexing` for
    ``mode``.

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
        With ``mode="all"`` or ``"ids"``: vectors (and failures) written at or after it
        are kept (a resumed run). Defaults to now.
    build_index : bool
        Create the encoder's HNSW index afterwards if it is missing.

    Returns
    -------
    dict
        ``mode``, ``encoder``, ``candidates``, ``embedded``, ``failed``, ``skipped``
        (products that lost their image meanwhile), ``removed`` (vectors of products
        without an image), ``seconds`` (:meth:`.Report.as_dict`).
    """
    t0 = time.monotonic()
    batch_size = checked_batch_size(batch_size)
    enc, todo, report = _prepare(mode, ids, encoder, started_before, verify_checksums)
    batches = embedded_batches(enc, todo, batch_size, report, progress=progress, error=error)
    for batch in batches:
        write_batch(enc, batch)
    return finish(enc, report, t0, build_index, "visualsearch reindex")


def _prepare(mode, ids, encoder, started_before, verify_checksums):
    """``(encoder, product keys to embed, report)`` of a reindex: what :func:`reindex` and
    :func:`reindex_fanned_out` work through, after removing orphaned vectors and catching
    up the vectors' copies of category and price."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}.")
    enc = resolve_encoder(encoder)
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
        if started_before is not None:  # a resumed run: what the first one did stays
            done = _written_since(enc, todo, started_before)
            todo = [pk for pk in todo if pk not in done["embedded"] | done["failed"]]
        removed = 0
    else:
        removed = remove_orphans(enc.name)
        if mode == "stale":
            todo = stale_products(enc, verify_checksums=verify_checksums)
        else:
            todo = all_products(enc.name, started_before or timezone.now())
    # Bulk edits (QuerySet.update sends no signal) leave the vectors' copies of category and
    # price behind, which the category indexes and filter btrees use: catch up in one UPDATE.
    copies_synced = vector_index.sync_copies(enc.name) if mode == "stale" else 0
    report = Report(
        mode, enc.name, candidates=len(todo), removed=removed, copies_synced=copies_synced
    )
    if mode != "ids":
        report.no_image, report.no_image_ids = without_image()
    return enc, todo, report


@holding_the_reindex_lock
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
    enc, todo, report = _prepare(mode, ids, encoder, started_before, verify_checksums)
    if progress:
        progress(0, len(todo), embedding_message(len(todo), enc.name))
    # Celery messages are JSON: integer keys stay integers, UUID keys travel as text.
    keys = [pk if isinstance(pk, int) else str(pk) for pk in todo]
    chunks = [keys[i : i + chunk_size] for i in range(0, len(keys), chunk_size)]
    fanned = fan_out(CHUNK_HANDLER, chunks, encoder=enc.name, since=since.isoformat())
    written = _written_since(enc, todo, since)
    report.embedded = len(written["embedded"])
    report.failed = len(written["failed"])
    report.skipped = max(len(todo) - report.embedded - report.failed, 0)
    report.chunks = len(chunks)
    report.deliveries = (fanned or {}).get("deliveries", len(chunks))
    return finish(enc, report, t0, build_index, "visualsearch reindex (fanned out)")


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
    enc = resolve_encoder(encoder)
    batch_size = int(batch_size or app_settings.INDEX_BATCH_SIZE)
    pks = sorted(adapter.parse_pk(k) for k in keys)
    written = _written_since(enc, pks, since)
    done_before = written["embedded"] | written["failed"]
    pending = [pk for pk in pks if pk not in done_before]
    report = Report("chunk", enc.name, skipped=len(pks) - len(pending))
    for batch in embedded_batches(enc, pending, batch_size, report):
        write_batch(enc, batch, also=add)
    return {"embedded": report.embedded, "failed": report.failed, "skipped": report.skipped}


def ensure_indexes(enc) -> dict:
    """Build the encoder's HNSW index and its per-category ones if missing, and give its
    vectors their sign bits (:func:`~visualsearch.services.sign_bits.ensure_signs`); what
    was made."""
    made = {}
    # The bits first: their update re-inserts each row into every graph already built.
    signed = sign_bits.ensure_signs(enc.name, enc.dim, enc.weights_hash)
    if signed:
        made["sign_bits_written"] = signed
    name, created = vector_index.ensure_index(enc.name, enc.dim)
    made["index_created"] = name if created else None
    categories = vector_index.ensure_category_indexes(enc.name, enc.dim)
    if categories:
        made["category_indexes_created"] = categories
    return made


def finish(enc, report, started, build_index, label) -> dict:
    """The end of every reindex: the encoder's indexes built if it embedded anything and
    ``build_index``, the time since ``started`` (``time.monotonic``), a log line; the
    result it returns (:meth:`.Report.as_dict`)."""
    if build_index and report.embedded:
        report.indexes = ensure_indexes(enc)
    report.seconds = round(time.monotonic() - started, 3)
    result = report.as_dict()
    # The counts as the record's fields too (a JSON log line's "reindex" object), not only
    # as text inside the message.
    logger.info(
        "%s: %s embedded, %s failed (%s, %.1f s)",
        label,
        result.get("embedded", 0),
        result.get("failed", 0),
        result.get("encoder", ""),
        report.seconds,
        extra={"reindex": result},
    )
    return result
