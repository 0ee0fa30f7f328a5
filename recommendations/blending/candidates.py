"""Candidate generation and scoring, written once for the shop and its evaluation.

A blend asks a :class:`CandidateSource` for everything that is data: the visual
neighbours, the ALS model's neighbours and picks, popularity, the newest products, which
products may be shown and their categories, creation times and embeddings. The
:class:`~.live.LiveSource` answers from the database, the pgvector index and the active
model, as the shop serves; the :class:`~.asof.AsOfSource` answers from the events before
an evaluation's cutoff. :func:`gather_similar`, :func:`gather_for_user`,
:func:`score_candidates` and :func:`rank` are the same for both, so the offline evaluation
scores exactly the code shoppers see.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from .core import COMPONENTS, combine, diversify

__all__ = [
    "CandidateSource",
    "Candidates",
    "Item",
    "Scored",
    "Shopper",
    "gather_for_user",
    "gather_similar",
    "rank",
    "score_candidates",
]

_SECONDS_PER_DAY = 86400.0


@dataclass
class Shopper:
    """Who a blend is for.

    Attributes
    ----------
    key : object
        What the source knows the shopper by (``(user_id, session_key)`` live); ``None``
        for an anonymous shopper without a session.
    history : list
        The latest distinct product ids, newest first.
    purchased : set
        Product ids the shopper bought.
    events : object
        What the source read about the shopper to find the rest, for its own later use
        (the live source's :class:`~recommendations.services.shoppers.ShopperEvents`);
        ``None`` when it read nothing.
    n_events : int or None
        How many events the shopper has, when the source counted them otherwise than in
        ``events`` (the offline evaluation: those before its cutoff); it decides the
        "new shopper" segment (:mod:`.segments`).
    """

    key: object = None
    history: list = field(default_factory=list)
    purchased: set = field(default_factory=set)
    events: object = None
    n_events: int | None = None


class Item(NamedTuple):
    """What a blend needs of a product it may show: its category key and creation time
    (an aware ``datetime`` or ``None``). The products themselves are loaded only for the
    few a blend keeps (``LiveSource.products``). A named tuple: a blend makes one for each
    of its two hundred candidates, and a frozen dataclass cost several times more to make.
    """

    category: object
    created: object


class CandidateSource:
    """Where a blend's candidates and raw scores come from (see the module docstring).

    Scores are raw: cosine similarities, ALS scores, weighted event counts. Lists are
    best first; ``exclude`` is a set of product ids never to propose.

    Attributes
    ----------
    now : datetime
        The moment recency is measured from.
    has_model : bool
        Whether an ALS model answers :meth:`similar_items` and :meth:`recommend`.
    """

    now = None
    has_model = False

    def visual_neighbours(self, n, exclude, *, product_id=None, vector=None):
        """``[(product id, similarity)]``: the ``n`` nearest products by image to the
        product's vector or to ``vector`` (L2-normalised float32)."""
        raise NotImplementedError

    def embeddings(self, product_ids):
        """``{product id: L2-normalised float64 vector}`` of those that have one."""
        raise NotImplementedError

    def similar_items(self, product_id, n):
        """``[(product id, score)]``: the ALS model's ``n`` nearest items to the product."""
        raise NotImplementedError

    def recommend(self, shopper, n, exclude):
        """``[(product id, score)]``: the ALS model's top ``n`` for the shopper."""
        raise NotImplementedError

    def covisited(self, product_ids, n, exclude):
        """``[(product id, summed count)]``: the ``n`` products most often looked at by
        the shoppers of ``product_ids`` (:mod:`.covisitation`); none by default, for a
        source without the model's co-visitation table."""
        return []

    def popular(self, n, exclude):
        """Product ids of the ``n`` most popular products."""
        raise NotImplementedError

    def popularity(self, product_ids):
        """``{product id: weighted event count}`` of those with events in the window."""
        raise NotImplementedError

    def newest(self, n, exclude):
        """Product ids of the ``n`` newest products a blend may show."""
        raise NotImplementedError

    def eligible(self, product_ids):
        """``{product id: Item}`` of those a blend may show."""
        raise NotImplementedError


class Candidates:
    """Candidate product ids in the order sources proposed them, with raw scores."""

    def __init__(self):
        self.origin = {}
        self.raw = {c: {} for c in COMPONENTS}

    def add(self, component, pairs):
        scores = self.raw[component]
        for pid, score in pairs:
            self.origin.setdefault(pid, component)
            if score is not None and math.isfinite(score):
                scores[pid] = max(score, scores.get(pid, -math.inf))

    def propose(self, component, product_ids):
        for pid in product_ids:
            self.origin.setdefault(pid, component)


def _gather_common(cands, source, shopper, exclude, n):
    """Sources shared by both widgets: the shopper's ALS items, popular and newest."""
    if source.has_model and shopper.key is not None:
        cands.add("affinity", source.recommend(shopper, n, exclude))
    cands.propose("popularity", source.popular(n, exclude))
    cands.propose("recency", source.newest(n, exclude))


def gather_similar(source, product_id, shopper, exclude, n):
    """Step 1 of "Similar items": the candidates for a product page.

    Returns
    -------
    cands : Candidates
    anchor : ndarray or None
        The product's embedding, which the visual component compares candidates with.
    """
    cands = Candidates()
    cands.add("visual", source.visual_neighbours(n, exclude, product_id=product_id))
    if source.has_model:
        cands.add("collaborative", source.similar_items(product_id, n))
    _gather_common(cands, source, shopper, exclude, n)
    return cands, source.embeddings([product_id]).get(product_id)


def gather_for_user(source, shopper, exclude, n):
    """Step 1 of "For you": products like the shopper's recent ones (visual neighbours of
    their mean embedding, ALS neighbours of each, the products looked at with them), the
    ALS model's picks for them, the popular and the newest products. (A product page has
    its ALS neighbours; co-visitation is for the short histories of "For you".)

    Returns
    -------
    cands : Candidates
    anchor : ndarray or None
        The shopper's taste: the normalised mean embedding of their recent products.
    """
    cands = Candidates()
    anchor = None
    if shopper.history:
        history_embeddings = source.embeddings(shopper.history)
        if history_embeddings:
            taste = np.mean(
                [history_embeddings[p] for p in shopper.history if p in history_embeddings], axis=0
            )
            norm = np.linalg.norm(taste)
            if norm > 0:
                anchor = taste / norm
                cands.add(
                    "visual", source.visual_neighbours(n, exclude, vector=anchor.astype(np.float32))
                )
    if source.has_model:
        per_item = max(n // max(len(shopper.history), 1), 10)
        for pid in shopper.history:
            cands.add("collaborative", source.similar_items(pid, per_item))
        if shopper.history:
            cands.add("covisitation", source.covisited(shopper.history, n, exclude))
    _gather_common(cands, source, shopper, exclude, n)
    return cands, anchor


@dataclass(eq=False)
class Scored:
    """Eligible candidates with their raw component scores (steps 1 and 2 of a blend).

    Attributes
    ----------
    ids : list
        Product ids, in proposal order.
    raw : ndarray of float64, shape (len(ids), len(COMPONENTS))
        NaN where a component did not score the candidate.
    origins : list of str
        The component whose source proposed each candidate first.
    categories : list
    embeddings : ndarray of float64, shape (len(ids), dim), or None
        Rows of zeros for candidates without an embedding; ``None`` when none has one.
    items : dict
        ``{product id: Item}``.
    """

    ids: list
    raw: np.ndarray
    origins: list
    categories: list
    embeddings: np.ndarray | None
    items: dict


def score_candidates(cands, source, exclude, recency_half_life_days, anchor=None):
    """The raw components of the candidates the source lets the blend show.

    ``visual`` is the cosine to ``anchor`` for every candidate with an embedding (the
    visual source's own score otherwise); ``popularity`` and ``recency`` are computed for
    every candidate; ``collaborative``, ``affinity`` and ``covisitation`` are what their
    sources said.
    Recency counts whole days, so that products created together tie instead of being
    ranked by the milliseconds between their inserts, which min-max would blow up to
    [0, 1]. Returns ``None`` when no candidate is eligible.
    """
    ids = [pid for pid in cands.origin if pid not in exclude]
    items = source.eligible(ids)
    ids = [pid for pid in ids if pid in items]
    if not ids:
        return None
    embeddings = source.embeddings(ids)
    matrix = _matrix(ids, embeddings)
    raw = np.full((len(ids), len(COMPONENTS)), np.nan)
    col = {c: j for j, c in enumerate(COMPONENTS)}
    if anchor is not None and matrix is not None:
        # One product for all candidates (rows of zeros included: cheaper than copying the
        # others out); those without an embedding keep NaN.
        has = np.array([pid in embeddings for pid in ids])
        raw[:, col["visual"]] = np.where(has, matrix @ anchor, np.nan)
    for component in ("visual", "collaborative", "affinity", "covisitation"):
        scores = cands.raw[component]
        if scores:
            known = np.array([scores.get(pid, np.nan) for pid in ids], dtype=np.float64)
            column = raw[:, col[component]]
            missing = np.isnan(column)
            column[missing] = known[missing]
    popularity = source.popularity(ids)
    if popularity:
        raw[:, col["popularity"]] = [popularity.get(pid, np.nan) for pid in ids]
    half_life = float(recency_half_life_days)
    now = source.now
    recency = [np.nan] * len(ids)
    for i, pid in enumerate(ids):
        when = items[pid].created
        if when is not None:
            age = max((now - when).total_seconds() // _SECONDS_PER_DAY, 0.0)
            recency[i] = 0.5 ** (age / half_life)
    raw[:, col["recency"]] = recency
    return Scored(
        ids=ids,
        raw=raw,
        origins=[cands.origin[pid] for pid in ids],
        categories=[items[pid].category for pid in ids],
        embeddings=matrix,
        items=items,
    )


def _matrix(ids, embeddings):
    if not embeddings:
        return None
    zero = np.zeros(len(next(iter(embeddings.values()))))
    return np.array([embeddings.get(pid, zero) for pid in ids], dtype=np.float64)


def rank(raw, settings, k, categories=None, embeddings=None, segments=None):
    """Steps 3 and 4: the weighted sum of the normalised components, then the profile's
    re-ranking for diversity. ``segments`` (one per candidate, ``None`` for none:
    :func:`.segments.candidate_segments`) picks each candidate's weights among the
    profile's segment weights.

    Returns
    -------
    picked : list of int
        Indices into the candidates, at most ``k``, best first.
    scores : ndarray, shape (n_candidates,)
    contributions : ndarray, shape (n_candidates, len(COMPONENTS))
    """
    weights = settings.weight_vector() if segments is None else settings.weight_rows(segments)
    scores, contributions = combine(raw, weights)
    picked = diversify(
        scores,
        k,
        settings.diversity,
        settings.diversity_param,
        categories=categories,
        embeddings=embeddings,
    )
    return picked, scores, contributions
