"""Fitting the encoder's catalogue projection while embedding the catalogue once
(:func:`reindex_with_projection`), with the shopper-style photos of some products that
teach it what such photos change (:func:`_shopper_photo_pairs`)."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
from django.utils import timezone
from django.utils.translation import ngettext

from .. import products
from ..conf import app_settings
from ..services import sign_bits, vector_index
from .images import open_catalogue_image, read_image_bytes
from .pipeline import checked_batch_size, embed_images, embedded_batches
from .report import Report
from .service import finish, holding_the_reindex_lock
from .state import all_products, remove_orphans, resolve_encoder, without_image
from .store import write_batch


def supports_projection(encoder=None) -> bool:
    """Whether the encoder can learn a catalogue projection (see
    :mod:`visualsearch.encoders.projection`)."""
    return resolve_encoder(encoder).supports_projection


@holding_the_reindex_lock
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

    Other parameters are those of :func:`~.service.reindex`.

    Returns
    -------
    dict
        As :func:`~.service.reindex` (``mode`` is ``"projection"``), plus ``projection``
        (the file written), ``fitted_on`` (products with a category), ``categories`` and
        ``pairs``.

    Raises
    ------
    ValueError
        If the encoder has no projection, or fewer than two categories have products.
    """
    t0 = time.monotonic()
    enc = resolve_encoder(encoder)
    if not supports_projection(enc):
        raise ValueError(f"Encoder {enc.name} does not support a learned projection.")
    vector_index.check_encoder_name(enc.name)
    batch_size = checked_batch_size(batch_size)
    pairs = int(app_settings.PROJECTION_PAIRS if pairs is None else pairs)
    if pairs < 0:
        raise ValueError("pairs must not be negative.")
    report = Report("projection", enc.name, removed=remove_orphans(enc.name))
    todo = all_products(enc.name, timezone.now())
    report.candidates = len(todo)
    n_pairs = min(pairs, len(todo)) if pairs >= 2 else 0
    total = len(todo) + n_pairs
    batches = list(
        embedded_batches(
            enc, todo, batch_size, report, raw=True, progress=progress, error=error, total=total
        )
    )

    def pair_progress(done):
        if progress:
            progress(
                len(todo) + done,
                total,
                ngettext(
                    "shopper-style photos of %(done)s of %(count)s product embedded",
                    "shopper-style photos of %(done)s of %(count)s products embedded",
                    n_pairs,
                )
                % {"done": done, "count": n_pairs},
            )

    _fit(enc, batches, report, gamma, (n_pairs, seed, batch_size, pair_progress))
    # The encoder now applies the new projection and reports its new weights_hash; each
    # batch is projected and labelled from one snapshot of it. The failures are written
    # with the first batch.
    failures = [failure for batch in batches for failure in batch.failures]
    _record_centre(enc, batches)
    for i, batch in enumerate(batches):
        projected, weights = enc.postprocess_versioned(batch.vectors)
        first = failures if i == 0 else []
        write_batch(
            enc, dataclasses.replace(batch, vectors=projected, weights=weights, failures=first)
        )
    report.no_image, report.no_image_ids = without_image()
    return finish(enc, report, t0, build_index, "visualsearch reindex with projection")


def _record_centre(enc, batches):
    """Record the centre of the sign bits of the projected vectors before they are written,
    so that each is written with its bits instead of rewritten for them afterwards
    (:func:`~visualsearch.services.sign_bits.record_mean`). The batches are projected
    here once more and summed, rather than kept projected beside the raw vectors."""
    sums, counts = {}, {}
    for batch in batches:
        projected, weights = enc.postprocess_versioned(batch.vectors)
        if len(projected):
            sums[weights] = sums.get(weights, 0) + np.asarray(projected, np.float64).sum(axis=0)
            counts[weights] = counts.get(weights, 0) + len(projected)
    for weights, total in sums.items():
        sign_bits.record_mean(enc.name, weights, total / counts[weights], counts[weights])


def _fit(enc, batches, report, gamma, pairing):
    """Fit and save the projection on the ``batches``' raw vectors, their products'
    categories and the shopper-photo pairs of ``pairing`` (the arguments of
    :func:`_shopper_photo_pairs` after the vectors); what it was fitted on goes into
    ``report``."""
    from ..encoders import projection as projections

    pks = [image.pk for batch in batches for image in batch.images]
    raw = np.concatenate([b.vectors for b in batches]) if batches else np.zeros((0, enc.dim))
    category_of = products.main_categories(pks)
    labelled = np.array([category_of.get(pk) is not None for pk in pks], dtype=bool)
    labels = np.array([category_of.get(pk) for pk in pks], dtype=object)[labelled]
    if len(set(labels.tolist())) < 2:
        raise ValueError(
            "Fitting a projection needs products with images in at least two categories."
        )
    pair_kwargs = _shopper_photo_pairs(enc, pks, raw, *pairing)
    kwargs = {} if gamma is None else {"gamma": float(gamma)}
    path = projections.fit_projection(
        raw[labelled], labels.astype(str), encoder=enc, **kwargs, **pair_kwargs
    )
    report.projection = str(path)
    report.fitted_on = int(labelled.sum())
    report.categories = len(set(labels.tolist()))
    report.pairs = len(pair_kwargs.get("pair_ids", ()))


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
        vectors, bad = embed_images(enc, images, enc.raw_embed)
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
    from ..localisation import grow, iou, views_of

    photo = shopper_photo(image, rng, kind, other)
    whole = (0, 0, *photo.image.size)
    # Compared with the product's box as a region would frame it, margin included.
    framed = grow(photo.box, photo.image.size)
    return max(views_of(photo.image), key=lambda v: iou(v[0] or whole, framed))[1]
