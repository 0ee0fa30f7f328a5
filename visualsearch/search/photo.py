"""Search by photo: find the products in the photo, search each, and fuse the answers.

A shopper's photo holds more than the product: a sofa around it, another product beside it.
:func:`visualsearch.localisation.views_of` asks where the products are and makes one view
per candidate region besides the whole photo (only the whole photo when the regions add
nothing: none found, or one that the encoder's own foreground crop frames).
:func:`search_photos` embeds every view of every photo in one batch, searches each view's
beam, and scores the union of the beams with every view; a product's fused score is its best
score over the views, so the product in a region ranks as it would in a photo of it alone,
and the whole photo still answers when localisation found nothing better. With the
projection's invariant re-ranking (:mod:`visualsearch.encoders.projection`) the scores are
cosines in that space, read from the stored vectors in one query; without it, the database's
cosines.

The fused list puts each region's best match first (a photo of two products shows both),
but only a region whose best match scores within :data:`REGION_TOP_MARGIN` of the photo's
best match; only those regions are returned as products found. A product photographed
alone is sometimes cut into fragments (a dark shoe's heel and sole on a dark backdrop) that
match nothing well: on 300 catalogue photos uploaded as they are shown (224 px), the
product came first for 0.86 of them when every region's match went first, and for 0.977
with the margin of 0.35; robust hit@10 of two-product photos moved from 0.813 / 0.823 to
0.810 / 0.820 (two draws of 300), one photo each.

When the projection re-ranks and carries a category prior, each view's scores gain
``CATEGORY_PRIOR`` times the log-probability of the candidate's main category given the
view, relative to the view's most likely category (:func:`_with_category_prior`), so that
the products of the category the photo most likely shows come before look-alikes of other
categories. Candidates within ``CATEGORY_PRIOR_MARGIN`` of the view's best score are spared:
a photo that matches one product that closely has found it, even where the classifier names
another category (on the demo, the same prior without that margin lowered robust hit@10 by
0.027 to 0.06 a kind of shopper photo).

The search itself (probe, plan, execute) is :func:`visualsearch.search.service._search`,
passed in as ``run`` so that this module does not import the service that calls it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..conf import app_settings
from ..deblocking import smooth_blocky
from ..encoders import get_encoder
from ..exposure import brighten_dim
from ..localisation import views_of
from ..pixelation import smooth_pixelated
from ..products import KEPT_CATEGORIES
from ..services.vectors import VectorCache
from .filters import Filters, Hit, Target, check_k, vector_text

__all__ = ["BLANK_SPREAD", "PhotoHits", "RegionHits", "search_photos", "shows_nothing"]


@dataclass(frozen=True)
class RegionHits:
    """A product found in the photo: its ``box`` (x0, y0, x1, y1, in pixels of the image
    searched) and the products that look most like that part of the photo."""

    box: tuple
    hits: list[Hit]


@dataclass(frozen=True)
class PhotoHits:
    """The fused answer for one photo, and the regions searched (empty when the photo was
    searched whole only).

    ``close_match`` says whether the best match scores at least ``CLOSE_MATCH_SCORE``:
    ``False`` when nothing in the shop looks much like the photo (a surface, a wall, a
    hand) or the photo shows nothing at all (:func:`shows_nothing`), ``None`` when that
    cannot be told (no threshold, no re-ranking, no result)."""

    hits: list[Hit]
    regions: list[RegionHits] = field(default_factory=list)
    close_match: bool | None = None


#: A region's best match is put first only when it scores within this of the photo's best
#: match: a region that matches nothing well (a fragment of one product, a patch of the
#: surface) must not push weak look-alikes above the product itself.
REGION_TOP_MARGIN = 0.35


def _matches_well(scores):
    """Which views (rows of ``scores``) match a product within :data:`REGION_TOP_MARGIN`
    of the photo's best match: the regions that are products found, not fragments."""
    return scores.max(axis=1) >= scores.max() - REGION_TOP_MARGIN


def _fuse(scores, candidates, k, keep_tops=False):
    """Top ``k`` of ``candidates`` by their best score over the views (``scores`` is
    ``(n_views, n_candidates)``); ties keep the lower product id first.

    With ``keep_tops``, each region's best match (rows after the first, the whole photo's)
    comes first, so that a photo of two products shows both even when one of them finds
    closer look-alikes than the other does, if it scores within :data:`REGION_TOP_MARGIN`
    of the best match of all.
    """
    best = scores.max(axis=0)
    found = [i for i in range(len(candidates)) if np.isfinite(best[i])]
    order = sorted(found, key=lambda i: (-best[i], candidates[i]))
    if keep_tops and len(scores) > 2 and found:
        strong = _matches_well(scores)
        tops = {int(np.argmax(scores[row])) for row in range(1, len(scores)) if strong[row]}
        order = [i for i in order if i in tops] + [i for i in order if i not in tops]
    return [Hit(candidates[i], float(best[i])) for i in order[:k]]


def _scored(beams, vectors, projection, encoder_name, weights):
    """``(candidates, scores)``: the union of the views' beams and each view's similarity
    to each of them, ``(n_views, n_candidates)``."""
    if projection is None:
        candidates = sorted({h.product_id for beam in beams for h in beam})
        column = {pid: i for i, pid in enumerate(candidates)}
        scores = np.full((len(beams), len(candidates)), -np.inf, dtype=np.float32)
        for row, beam in enumerate(beams):
            for h in beam:
                scores[row, column[h.product_id]] = h.score
        return candidates, scores
    seen = list(dict.fromkeys(h.product_id for beam in beams for h in beam))
    mapped = reranked_vectors(projection, seen, encoder_name, weights)
    candidates = [pid for pid in seen if pid in mapped]
    if not candidates:
        return [], np.zeros((len(beams), 0), dtype=np.float32)
    queries = projection.rerank_vectors(np.asarray(vectors, dtype=np.float32))
    return candidates, queries @ np.stack([mapped[pid] for pid in candidates]).T


def _with_category_prior(scores, vectors, candidates, projection):
    """``scores`` with the category prior added: ``CATEGORY_PRIOR`` times the
    log-probability of each candidate's category given each view
    (:meth:`~visualsearch.encoders.projection.Projection.category_log_probabilities`),
    taken relative to the view's most likely category, so that the prior only ever lowers
    a candidate against that category's products: a view the classifier is unsure of is not
    pushed below the others in the fusion, and a candidate of a category it does not know
    (none, or one created since the fit) ranks as one of the most likely. Candidates within
    ``CATEGORY_PRIOR_MARGIN`` of the view's best score are spared."""
    beta = float(app_settings.CATEGORY_PRIOR)
    if beta <= 0 or not candidates or projection is None or not projection.category_prior:
        return scores
    column = {label: j for j, label in enumerate(projection.category_labels)}
    category = KEPT_CATEGORIES.get(candidates)
    index = np.array(
        [
            -1 if category.get(pid) is None else column.get(str(category[pid]), -1)
            for pid in candidates
        ]
    )
    known = index >= 0
    if not known.any():
        return scores
    log_p = projection.category_log_probabilities(vectors)
    log_p = (log_p - log_p.max(axis=1, keepdims=True))[:, np.maximum(index, 0)]
    close = scores >= scores.max(axis=1, keepdims=True) - float(app_settings.CATEGORY_PRIOR_MARGIN)
    return np.where(close | ~known, scores, scores + beta * log_p).astype(np.float32)


#: ``{weights hash: VectorCache}``: per projection, its re-ranking space's copies of the
#: stored vectors (:func:`reranked_vectors`).
_reranked = {}


def reranked_vectors(projection, product_ids, encoder_name, weights=None):
    """``{product id: stored vector mapped into the projection's re-ranking space}``.

    Kept per process (:class:`~visualsearch.services.vectors.VectorCache`, under the
    vectors' stamp, so a product embedded again is mapped again): the same catalogue
    products come back as candidates photo after photo, and reading and mapping the 200-600
    candidates of a photo searched in regions took 30 ms each on a 2-core machine. Keyed by
    the weights hash (the encoder's current one by default), which covers the projection's
    maps: one projection's copies at a time.
    """
    if weights is None:
        weights = get_encoder(encoder_name).weights_hash
    cache = _reranked.get(weights)
    if cache is None:
        cache = VectorCache(transform_many=projection.rerank_vectors)
        _reranked.clear()  # an earlier projection's copies are never asked for again
        _reranked[weights] = cache
    return cache.get(product_ids, encoder=encoder_name, weights_hash=weights)


def search_photos(images, k=12, filters=None, encoder=None, *, run, localise=True):
    """Search with each PIL image, finding the products in it first (see the module
    docstring).

    Parameters
    ----------
    images : iterable of PIL.Image.Image
    k : int
        Results per photo and per region.
    filters : Filters, optional
    encoder : str, optional
    run : callable
        ``run(target, k, filters, ef_search=None) -> SearchResult``, the service's search.
    localise : bool
        Whether to look for the products in the photos; off, each photo is searched whole
        (a shopper's own crop box has already said where the product is).

    Returns
    -------
    list of PhotoHits
        One per image, in order.
    """
    check_k(k)
    images = list(images)
    if not images:
        return []
    enc = get_encoder(encoder)
    filters = filters or Filters()
    # A thumbnail enlarged by repeating its pixels is enlarged smoothly instead, a photo
    # taken in dim light is brought back to a catalogue photo's levels, and a heavily
    # compressed one has its JPEG blocks smoothed.
    blank = [shows_nothing(image) for image in images]
    per_image = [
        views_of(smooth_blocky(brighten_dim(smooth_pixelated(image))), localise) for image in images
    ]
    flat = [view for views in per_image for _box, view in views]
    # The photos are compared with the vectors of the weights that embedded them.
    vectors, weights = enc.embed_versioned(flat)
    projection = enc.projection
    depth = int(app_settings.RERANK_CANDIDATES)
    if projection is None or not projection.reranks or depth <= 0:
        projection, depth, ef_search = None, k, None
    else:
        # A beam of only ``depth`` would return the graph's rough guess at its tail, where
        # the photographed product often sits before re-ranking: twice as wide.
        depth = max(depth, k)
        ef_search = 2 * depth
    answers, start = [], 0
    for views in per_image:
        own = vectors[start : start + len(views)]
        start += len(views)
        targets = [Target(enc.name, enc.dim, weights, vector_text(v, enc.dim)) for v in own]
        beams = [run(t, depth, filters, ef_search=ef_search).hits for t in targets]
        candidates, scores = _scored(beams, own, projection, enc.name, weights)
        scores = _with_category_prior(scores, own, candidates, projection)
        if not candidates:
            answers.append(PhotoHits([], []))
            continue
        strong = _matches_well(scores)
        regions = [
            RegionHits(box, _fuse(scores[row : row + 1], candidates, k))
            for row, (box, _view) in enumerate(views)
            if box is not None and strong[row]
        ]
        hits = _fuse(scores, candidates, k, keep_tops=True)
        close = False if blank[len(answers)] else _close_match(hits, projection)
        answers.append(PhotoHits(hits, regions, close))
    return answers


#: A photo whose grey levels, at 64 x 64 pixels, spread less than this (out of 255) shows
#: nothing: a lens cap, a black or white screen. The encoder still finds its nearest
#: products (a black photo scores 0.19-0.23 against the mostly black catalogue photos, above
#: ``CLOSE_MATCH_SCORE``), so its answer is never called a close match. A plain wall or
#: a table top has grain and light falling off across it, well above this.
BLANK_SPREAD = 2.0


def shows_nothing(image):
    """Whether ``image`` (PIL) is one flat colour, give or take noise: see
    :data:`BLANK_SPREAD`."""
    small = image.convert("L").resize((64, 64))
    return float(np.asarray(small, dtype=np.float32).std()) < BLANK_SPREAD


def _close_match(hits, projection):
    """Whether the best of ``hits`` scores at least ``CLOSE_MATCH_SCORE`` (see
    :class:`PhotoHits`); only on the re-ranking's scale, which the threshold was measured on."""
    threshold = app_settings.CLOSE_MATCH_SCORE
    if threshold is None or projection is None or not hits:
        return None
    return max(h.score for h in hits) >= threshold
