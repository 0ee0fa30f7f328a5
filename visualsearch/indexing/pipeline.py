"""Reading and embedding the catalogue batch by batch: :func:`embedded_batches`, the one
loop of every reindex (in this process, in a fanned-out chunk, and for a projection fit).

It yields each batch embedded but not written: a reindex writes it at once
(:func:`.store.write_batch`), a projection fit keeps the raw vectors until the projection
is fitted. Only once the caller is done with a batch is it counted, its failures told and
the progress moved, so that what a run reports is what it committed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from django.utils.translation import gettext, ngettext

from lookalike.catalogue import IMAGE

from .. import products
from ..conf import app_settings
from .images import checksum, decoding_failure, open_catalogue_image, read_image_bytes

logger = logging.getLogger(__name__)


class Image(NamedTuple):
    """A catalogue image embedded in a batch."""

    pk: object
    name: str
    checksum: str


class Failure(NamedTuple):
    """A catalogue image that could not be embedded (read, decoded or encoded), stored as
    an ``IndexFailure``; ``checksum`` is empty when its bytes could not be read."""

    pk: object
    name: str
    checksum: str
    reason: str


@dataclass
class EmbeddedBatch:
    """One batch read and embedded: ``vectors`` (``len(images) x dim``, float32) are the
    ``images``' in their order, made by the weights ``weights`` (``None`` for raw vectors,
    before the encoder's projection)."""

    images: list[Image]
    vectors: np.ndarray
    failures: list[Failure]
    #: Products of the batch without an image, or deleted since the batch was listed.
    skipped: int
    weights: str | None = None
    #: The weights changed while the batch was embedded: write nothing, it stays stale.
    discarded: bool = False


def embedding_message(count, encoder_name) -> str:
    """A reindex's first progress message, in the language active where it runs."""
    return ngettext(
        "Embedding %(count)s product image with %(encoder)s",
        "Embedding %(count)s product images with %(encoder)s",
        count,
    ) % {"count": count, "encoder": encoder_name}


def checked_batch_size(batch_size) -> int:
    """``batch_size``, or ``VISUALSEARCH_INDEX_BATCH_SIZE``; at least 1."""
    batch_size = int(batch_size or app_settings.INDEX_BATCH_SIZE)
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1.")
    return batch_size


def embedded_batches(
    enc, keys, batch_size, report, *, raw=False, progress=None, error=None, total=None
):
    """Yield the products ``keys`` read and embedded, ``batch_size`` at a time.

    Parameters
    ----------
    enc : Encoder
    keys : list
        Product keys, in the order to embed them.
    report : Report
        Counts each batch once the caller has dealt with it (:meth:`.Report.count`).
    raw : bool
        Embed without the encoder's projection (``raw_embed``); otherwise every vector is
        labelled with the weights that made it and a batch whose weights changed in its
        middle is not yielded, only counted as skipped.
    progress : callable ``(done, total, message)``, optional
    error : callable ``(product_id, reason)``, optional
        Called for each failure of a batch after the caller has dealt with it.
    total : int, optional
        The ``total`` told to ``progress``: ``len(keys)``, or more when the run has
        work to do after the embedding (a projection fit's shopper photos).

    Yields
    ------
    EmbeddedBatch
    """
    total = len(keys) if total is None else total
    if progress:
        progress(0, total, embedding_message(len(keys), enc.name))
    for start in range(0, len(keys), batch_size):
        part = keys[start : start + batch_size]
        batch = read_and_embed(enc, part, raw=raw)
        if not batch.discarded:
            yield batch
        report.count(batch)
        if error:
            for failure in batch.failures:
                error(failure.pk, failure.reason)
        if progress:
            done = start + len(part)
            progress(
                done,
                total,
                ngettext(
                    "%(done)s of %(count)s image embedded",
                    "%(done)s of %(count)s images embedded",
                    len(keys),
                )
                % {"done": done, "count": len(keys)},
            )


def read_and_embed(enc, keys, *, raw=False) -> EmbeddedBatch:
    """Read and embed one batch of products, without writing anything.

    Unless ``raw``, every vector is labelled with the hash of the weights that made it
    (:meth:`~visualsearch.encoders.base.Encoder.embed_versioned`). Should the weights
    change in the middle of the batch (a projection refitted by another process), the
    batch is ``discarded``: its products count as skipped and stay stale, and the next
    pass embeds them again, rather than mixing two versions under one label.
    """
    versions = set()

    def versioned(images):
        vectors, weights = enc.embed_versioned(images)
        versions.add(weights)
        return vectors

    images, decoded, failures, skipped = _read(keys)
    vectors, bad = embed_images(enc, decoded, enc.raw_embed if raw else versioned)
    for i in sorted(bad, reverse=True):
        failures.append(Failure(*images.pop(i), bad[i]))
    if raw:
        return EmbeddedBatch(images, vectors, failures, skipped)
    if len(versions) > 1:
        logger.warning("The encoder's weights changed during a batch; it stays stale.")
        empty = np.zeros((0, enc.dim), dtype=np.float32)
        return EmbeddedBatch([], empty, [], skipped + len(images), discarded=True)
    weights = versions.pop() if versions else enc.weights_hash
    return EmbeddedBatch(images, vectors, failures, skipped, weights)


def _read(keys):
    """``(images, decoded images, failures, skipped)`` of the products ``keys``: each
    image is read, hashed and decoded, and only the reduced image is kept."""
    rows = products.with_images().filter(pk__in=keys).order_by("pk").values_list("pk", IMAGE)
    images, decoded, failures, skipped = [], [], [], 0
    for pk, name in rows:
        if not name:
            skipped += 1
            continue
        try:
            data = read_image_bytes(name)
        except OSError as exc:
            reason = gettext("Cannot read the image file: %(error)s") % {"error": exc}
            failures.append(Failure(pk, name, "", reason))
            continue
        digest = checksum(data)
        try:
            decoded.append(open_catalogue_image(data))
        except Exception as exc:  # MemoryError too: one image must not stop the job
            failures.append(Failure(pk, name, digest, decoding_failure(exc)))
            continue
        finally:
            del data  # only the reduced image stays for the batch
        images.append(Image(pk, name, digest))
    skipped += len(keys) - len(rows)  # deleted meanwhile
    return images, decoded, failures, skipped


def embed_images(enc, images, embed=None):
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
            bad[i] = gettext("The encoder failed on this image: %(error)s") % {
                "error": f"{type(exc).__name__}: {exc}"
            }
    return np.asarray(vectors, dtype=np.float32).reshape(-1, enc.dim), bad


def _checked(enc, vectors, n):
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.shape != (n, enc.dim) or not np.all(np.isfinite(vectors)):
        raise ValueError(f"{enc.name} returned vectors of shape {vectors.shape} or non-finite.")
    return vectors
