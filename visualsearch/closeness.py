"""Measuring where ``VISUALSEARCH_CLOSE_MATCH_SCORE`` should sit for a shop's catalogue.

Photo search tells a photo that nothing in the shop looks much like it when its best match
scores below the threshold (:class:`visualsearch.search.photo.PhotoHits`). The scores
depend on the encoder, its fitted projection and the catalogue, so the default (0.18, from
the demo catalogue) is only a start: :func:`calibrate` photographs the shop's own products
as shoppers would (:func:`visualsearch.distortions.shopper_photo`, every kind, products the
projection did not learn from) and makes photos of no product at all (a surface, a plain
colour, a gradient, blurred noise, a hand or a bag alone), searches them all as the shop
does, and reports how many of each fall below each threshold.
``manage.py calibrate_close_match`` prints it.
"""

from __future__ import annotations

import numpy as np

from . import products, search
from .distortions import KINDS, display_copy, shopper_photo
from .encoders import get_encoder
from .indexing.images import open_catalogue_image, read_image_bytes
from .models import ProductEmbedding
from .search.photo import shows_nothing
from .textures import hand_or_bag, muted_colour, texture

__all__ = [
    "EMPTY_KINDS",
    "THRESHOLDS",
    "best_matches",
    "calibrate",
    "empty_photos",
    "score_empty_photos",
    "score_product_photos",
    "shares_below",
    "shopper_photos",
    "summary",
]

#: Photos of no product that :func:`empty_photos` makes.
EMPTY_KINDS = ("texture", "plain", "gradient", "noise", "hand_or_bag")
#: Thresholds reported.
THRESHOLDS = tuple(round(t, 2) for t in np.arange(0.1, 0.51, 0.02))
#: The share of product photos a suggested threshold may tell "no close match".
PRODUCT_PHOTOS_TOLD = 0.02
_SIDE = 320


def empty_photos(n, rng) -> dict:
    """``{kind: [PIL images]}``, ``n`` photos of each kind of :data:`EMPTY_KINDS`."""
    from PIL import Image, ImageFilter

    size = (_SIDE, _SIDE)
    photos = {kind: [] for kind in EMPTY_KINDS}
    for _ in range(n):
        photos["texture"].append(texture(size, rng))
        photos["plain"].append(Image.new("RGB", size, muted_colour(rng, 0, 255)))
        a, b = np.array(muted_colour(rng)), np.array(muted_colour(rng))
        ramp = np.linspace(0, 1, _SIDE)[:, None, None]
        column = (a * (1 - ramp) + b * ramp).astype(np.uint8)
        photos["gradient"].append(Image.fromarray(np.repeat(column, _SIDE, axis=1)))
        coarse = rng.integers(0, 256, (_SIDE // 8, _SIDE // 8, 3), dtype=np.uint8)
        blurred = Image.fromarray(coarse).resize(size).filter(ImageFilter.GaussianBlur(3))
        photos["noise"].append(blurred)
        surface = texture(size, rng)
        box = (_SIDE // 4, _SIDE // 4, 3 * _SIDE // 4, 3 * _SIDE // 4)
        layer, mask = hand_or_bag(size, box, rng)
        surface.paste(layer, (0, 0), mask)
        photos["hand_or_bag"].append(surface)
    return photos


def shopper_photos(n, rng) -> dict:
    """``{kind: (PIL images, product keys)}``: ``n`` shopper photos of each kind of
    :data:`~visualsearch.distortions.KINDS`, of indexed products the projection did not
    learn from (their photos would flatter it), each of its own product."""
    enc = get_encoder()
    seen = set(getattr(enc.projection, "pair_ids", ()) or ())
    indexed = ProductEmbedding.objects.filter(encoder=enc.name, weights_hash=enc.weights_hash)
    pool = [pk for pk in indexed.order_by("product_id").values_list("product_id", flat=True)]
    pool = [pk for pk in pool if pk not in seen] or pool
    if len(pool) < 2:
        raise ValueError("Photo search needs at least two indexed products to be measured.")
    names = products.image_names(pool)
    cache = {}

    def display(pk):
        if pk not in cache:
            cache[pk] = display_copy(open_catalogue_image(read_image_bytes(names[pk])), 224)
        return cache[pk]

    photos = {}
    for kind in KINDS:
        chosen = [pool[i] for i in rng.choice(len(pool), size=min(n, len(pool)), replace=False)]
        images, keys = [], []
        for pk in chosen:
            other = pool[int(rng.integers(len(pool)))]
            other = other if other != pk else next(p for p in pool if p != pk)
            try:
                images.append(shopper_photo(display(pk), rng, kind, display(other)).image)
            except Exception:
                continue  # an image that can no longer be read
            keys.append(pk)
        photos[kind] = (images, keys)
    return photos


def best_matches(images, targets=None, batch=16):
    """``(best fused score of each photo, whether its target is in its top 10)`` through
    photo search as the shop runs it; the second is ``None`` without ``targets``.

    A photo the shop never calls a close match whatever it scores, one that shows nothing
    (:func:`~visualsearch.search.photo.shows_nothing`), and one without any result, score
    ``-inf``: below every threshold, as the shop tells them."""
    scores, tops = [], []
    for start in range(0, len(images), batch):
        chunk = images[start : start + batch]
        for image, answer in zip(chunk, search.search_photos(chunk, k=10), strict=True):
            told = not answer.hits or shows_nothing(image)
            scores.append(float("-inf") if told else answer.hits[0].score)
            tops.append({h.product_id for h in answer.hits})
    found = None
    if targets is not None:
        found = np.array([t in top for t, top in zip(targets, tops, strict=True)], dtype=bool)
    return np.asarray(scores, dtype=np.float64), found


def score_product_photos(n, rng):
    """``({kind: best scores}, {kind: whether each found its product})`` of
    :func:`shopper_photos`' ``n`` photos of each kind."""
    scores, found = {}, {}
    for kind, (images, keys) in shopper_photos(n, rng).items():
        scores[kind], found[kind] = best_matches(images, keys)
    return scores, found


def score_empty_photos(n, rng):
    """``{kind: best scores}`` of :func:`empty_photos`' ``n`` photos of each kind."""
    return {kind: best_matches(images)[0] for kind, images in empty_photos(n, rng).items()}


def summary(scores):
    """n, how many are told whatever their score (``-inf``, :func:`best_matches`), and min,
    5th percentile, median, 95th percentile and max of the others, rounded."""
    scores = np.asarray(scores, dtype=np.float64)
    scored = scores[np.isfinite(scores)]
    out = {"n": len(scores), "always_told": len(scores) - len(scored)}
    if not len(scored):
        return out
    pick = {"min": 0, "p05": 5, "median": 50, "p95": 95, "max": 100}
    return out | {name: round(float(np.percentile(scored, q)), 3) for name, q in pick.items()}


def shares_below(thresholds, groups, product_scores, product_found) -> dict:
    """``{threshold: {group: share of its scores below, "told_yet_found": ...}}``, where
    ``told_yet_found`` is the share of the product photos below the threshold that had
    found their product in the top 10 all the same: those a notice would wrong."""
    table = {}
    for t in thresholds:
        low = product_scores < t
        row = {
            name: round(float((scores < t).mean()), 4) if len(scores) else None
            for name, scores in groups.items()
        }
        row["told_yet_found"] = round(float(product_found[low].mean()), 3) if low.any() else None
        table[str(t)] = row
    return table


def calibrate(n=60, seed=0) -> dict:
    """The report :mod:`this module <visualsearch.closeness>` describes: score summaries
    per kind of photo, the share below each of :data:`THRESHOLDS`, and ``suggested``, the
    highest threshold that tells at most :data:`PRODUCT_PHOTOS_TOLD` of the product photos.

    Raises
    ------
    ValueError
        Without the projection's re-ranking (the threshold is read on its scale only) or
        with fewer than two indexed products.
    """
    projection = get_encoder().projection
    if projection is None or not projection.reranks:
        raise ValueError(
            "Photo search does not re-rank with a fitted projection here, so it never tells "
            "a close match: run `manage.py reindex --all --fit-projection` first."
        )
    rng = np.random.default_rng(seed)
    with_product, found = score_product_photos(n, rng)
    without = score_empty_photos(n, rng)
    every_with = np.concatenate(list(with_product.values()))
    every_without = np.concatenate(list(without.values()))
    every_found = np.concatenate(list(found.values()))

    groups = {"product_photos": every_with, "photos_of_no_product": every_without}
    below = shares_below(THRESHOLDS, groups, every_with, every_found)
    allowed = [t for t in THRESHOLDS if (every_with < t).mean() <= PRODUCT_PHOTOS_TOLD]
    return {
        "encoder": get_encoder().name,
        "photos_per_kind": n,
        "product_photos": {kind: summary(v) for kind, v in with_product.items()},
        "photos_of_no_product": {kind: summary(v) for kind, v in without.items()},
        "share_below": below,
        "suggested": max(allowed) if allowed else None,
    }
