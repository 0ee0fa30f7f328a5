"""The segments of the offline blend evaluation: which shoppers, which products ranked,
which held-out interactions count (:data:`PROTOCOLS`), and their scoring.

``all``, ``new_shoppers`` and ``regulars`` rank the whole catalogue for their shoppers
("For you", as served); ``cold_items`` ranks only the cold products, those without
training events, a share of which had their whole history before the cutoff held out
(:func:`held_out_history`), so that the evaluation has products nobody has
interacted with yet and held-out interactions with them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..blending.core import NEW_SHOPPER_EVENTS
from ..evaluation import catalogue_coverage, intra_list_diversity, ranking_metrics
from .shop_events import split

__all__ = [
    "PROTOCOLS",
    "SEGMENT_NAMES",
    "Segment",
    "held_out_events",
    "held_out_history",
    "score_segment",
]

SEGMENT_NAMES = ("all", "cold_items", "new_shoppers", "regulars")

PROTOCOLS = {
    "all": "every shopper with events on both sides of the cutoff; the whole catalogue "
    "ranked ('For you' as served: candidates from every source, the shopper's training "
    "products left out); every held-out interaction counts",
    "cold_items": "shoppers of 'all' with a held-out interaction with a cold product; only "
    "the cold products ranked (every product without training events: the held-out share "
    "of products whose whole history before the cutoff was removed, and those that had none); "
    "only held-out interactions with cold products count; coverage is over the cold products; "
    "ALS, popularity and co-visitation know nothing of a cold product, so their figures here "
    "are those of their tie-break order, a floor rather than a ranking",
    "new_shoppers": f"shoppers of 'all' with at most {NEW_SHOPPER_EVENTS} training events "
    "(those who had so few, and the held-out share of shoppers whose history before the "
    f"cutoff was cut to its latest {NEW_SHOPPER_EVENTS} events); ranked and counted as in 'all'",
    "regulars": f"shoppers of 'all' with more than {NEW_SHOPPER_EVENTS} training events; "
    "ranked and counted as in 'all'",
}


def _draw(values, share, rng):
    n = min(int(round(share * len(values))), len(values))
    return values[rng.choice(len(values), size=n, replace=False)] if n > 0 else values[:0]


def held_out_history(events, cutoff, cold_share, new_share, seed):
    """Which events before the cutoff to hold out, and the products made cold.

    * the whole history before the cutoff of a ``cold_share`` of the products with
      events before it (they become cold products);
    * all but the latest :data:`NEW_SHOPPER_EVENTS` events before the cutoff of a
      ``new_share`` of the shoppers with more and with events after it (they become
      new shoppers, as if they had arrived just before the cutoff).

    Returns
    -------
    drop : ndarray of bool, shape (n_events,)
    cold_products : ndarray
        Product ids of the held-out products.
    """
    rng = np.random.default_rng([seed, 15])
    before = events.ts < cutoff
    products = _draw(np.unique(events.product[before]), cold_share, rng)
    drop = before & np.isin(events.product, products)
    # Events are newest first: a shopper's rank among their own earlier events.
    kept = before & ~drop
    rank = np.zeros(len(events.ts), dtype=np.int64)
    seen = {}
    for i in np.flatnonzero(kept).tolist():
        key = events.who[i]
        rank[i] = seen.get(key, 0)
        seen[key] = rank[i] + 1
    later = set(events.who[~before].tolist())
    regulars = np.asarray(
        sorted(k for k, n in seen.items() if n > NEW_SHOPPER_EVENTS and k in later), dtype=str
    )
    shoppers = _draw(regulars, new_share, rng)
    drop |= kept & np.isin(events.who, shoppers) & (rank >= NEW_SHOPPER_EVENTS)
    return drop, products


@dataclass(eq=False)
class Segment:
    """One segment's shoppers, their candidates and what counts as a hit.

    Attributes
    ----------
    candidates : list of ndarray of int
        Catalogue columns of each shopper's candidates.
    raw : list of ndarray
        Raw components as the single sources give them (the baselines).
    filled : list of ndarray
        The same with the cold candidates' collaborative scores
        (:func:`recommendations.blending.segments.cold_columns`): what the blend sees.
    row_segments : list of list
        Each candidate's segment (:func:`~recommendations.blending.segments.candidate_segments`).
    test : csr_matrix, shape (n_shoppers, n_items)
        The held-out interactions that count.
    ranked : int
        How many products the segment ranks (coverage is over them).
    """

    candidates: list
    raw: list
    filled: list
    row_segments: list
    test: sp.csr_matrix
    ranked: int

    @property
    def size(self):
        """How many shoppers the segment has."""
        return len(self.candidates)

    def subset(self, rows):
        rows = list(rows)
        return Segment(
            candidates=[self.candidates[r] for r in rows],
            raw=[self.raw[r] for r in rows],
            filled=[self.filled[r] for r in rows],
            row_segments=[self.row_segments[r] for r in rows],
            test=self.test[rows],
            ranked=self.ranked,
        )


def held_out_events(events, test_fraction, cold_share, new_share, seed):
    """The events left once the cold products' and new shoppers' are held out
    (:func:`held_out_history`), the held-out products and the cutoff."""
    if not len(events.ts):
        raise ValueError(
            "There are no shopper events to evaluate on: run `manage.py simulate_shoppers` first."
        )
    cutoff = split(events, test_fraction)[1]
    drop, held = held_out_history(events, cutoff, cold_share, new_share, seed)
    return events[~drop], held, cutoff


def score_segment(segment, settings, k, categories, embeddings, rank, blend, per_user=None):
    """The metrics of ``settings`` on one segment, ``users`` included.

    ``blend`` says whether this is the profile (the cold candidates' collaborative scores
    and the segment weights) or a single source (the sources' raw scores, one weight).
    ``per_user``, a list, receives each shopper's NDCG (for :mod:`.comparison`).
    """
    recommended = np.full((len(segment.candidates), k), -1, dtype=np.int64)
    rows = zip(segment.candidates, segment.raw, segment.filled, segment.row_segments, strict=True)
    for u, (cand, raw, filled, segs) in enumerate(rows):
        if not len(cand):
            continue
        picked, _, _ = rank(
            filled if blend else raw,
            settings,
            k,
            categories=categories[cand],
            embeddings=embeddings[cand] if embeddings is not None else None,
            segments=segs if blend else None,
        )
        recommended[u, : len(picked)] = cand[picked]
    # Per shopper once: the means are those of the shoppers with held-out products (not
    # NaN), in the same order as ranking_metrics' own means.
    each = ranking_metrics(recommended, segment.test, k, per_user=True) if len(recommended) else {}
    metrics = {
        name: float(values[np.isfinite(values)].mean()) if np.isfinite(values).any() else 0.0
        for name, values in each.items()
        if name != "users"
    }
    if per_user is not None:
        per_user.append(each.get("ndcg", np.zeros(0)))
    return {
        f"precision_at_{k}": metrics.get("precision", 0.0),
        f"recall_at_{k}": metrics.get("recall", 0.0),
        f"map_at_{k}": metrics.get("map", 0.0),
        f"ndcg_at_{k}": metrics.get("ndcg", 0.0),
        "coverage": catalogue_coverage(recommended, max(segment.ranked, 1))
        if len(recommended)
        else 0.0,
        "diversity": intra_list_diversity(recommended, categories) if len(recommended) else 0.0,
        "users": len(segment.candidates),
    }
