"""The blend's vocabulary and its arithmetic, in one module that knows nothing of the
database.

The vocabulary -- the components, their reasons, the diversity methods, the rules and the
default profile -- is written here once: the model
(:class:`~recommendations.models.BlendProfile`), the profiles service, the blend and its
offline evaluation import it. Migration 0009 keeps its own literal copy of the default
profile (migrations are history); a test holds :data:`BUILTIN_SETTINGS` equal to it.

The arithmetic is steps 2 to 4 of a blend (see :mod:`recommendations.blending`), on
arrays: :func:`normalise` and :func:`combine` score the candidates, :func:`reasons` says
why each is shown, :func:`diversify` picks the list. The shop's widgets and the offline
evaluation both call them, through :func:`.candidates.rank`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from django.utils.translation import gettext_lazy as _

__all__ = [
    "BUILTIN_SETTINGS",
    "COMPONENTS",
    "DEFAULT_DIVERSITY",
    "DEFAULT_DIVERSITY_PARAMS",
    "DEFAULT_SEGMENTS",
    "DEFAULT_WEIGHTS",
    "DIVERSITY_METHODS",
    "REASONS",
    "NEW_SHOPPER_EVENTS",
    "PREDICTED_REASONS",
    "RULES",
    "SEGMENTS",
    "SEGMENT_LABELS",
    "BlendSettings",
    "combine",
    "diversify",
    "normalise",
    "reasons",
]


#: Blend components, in the order their reasons win ties.
COMPONENTS = ("visual", "collaborative", "affinity", "popularity", "recency", "covisitation")
#: The largest weight a profile may give a component: only the proportions matter, and
#: weights near the float limit would add up to infinity and zero every score.
MAX_WEIGHT = 1000.0

REASONS = {
    "visual": _("Looks similar"),
    "collaborative": _("Shoppers who viewed this also viewed"),
    "affinity": _("Picked for you"),
    "popularity": _("Popular now"),
    "recency": _("New in"),
    "covisitation": _("Often viewed together"),
}

#: The reasons of a cold candidate (:data:`SEGMENTS`), whose collaborative score is
#: predicted from its looks (:mod:`.coldstart`): nobody viewed it with this product yet.
PREDICTED_REASONS = {
    "collaborative": _("Matches the taste of shoppers who viewed this"),
}

#: Re-rankings for diversity (see :func:`.scoring.diversify`).
DIVERSITY_METHODS = ("none", "mmr", "category_cap")

#: The parameter each diversity method takes when a profile names none.
DEFAULT_DIVERSITY_PARAMS = {"none": 0.0, "mmr": 0.7, "category_cap": 2.0}

#: A profile's rules, each on unless the profile says otherwise.
RULES = ("in_stock_only", "exclude_purchased", "exclude_current")

#: Segments of requests a profile may weigh differently (``BlendProfile.segments``), in
#: the order that decides a candidate in two of them: a product the ALS model has no
#: factors for (``cold_item``: nobody had interacted with it when the model was trained)
#: is scored with the cold-item weights whoever the shopper is; otherwise a shopper with
#: at most :data:`NEW_SHOPPER_EVENTS` events is scored with the new-shopper weights.
SEGMENTS = ("cold_item", "new_shopper")

SEGMENT_LABELS = {
    "cold_item": _("a product nobody had interacted with when the model was trained"),
    "new_shopper": _("a shopper with at most two events"),
}

#: A shopper with at most this many events is a new shopper.
NEW_SHOPPER_EVENTS = 2

#: The default profile's weights (migration 0009, tuned on the demo's simulated shoppers
#: in notebook 02): ALS's picks first, with some visual similarity and popularity, which
#: beat ALS alone for shoppers with a history.
DEFAULT_WEIGHTS = {
    "visual": 0.16,
    "collaborative": 0.0,
    "affinity": 0.8,
    "popularity": 0.04,
    "recency": 0.0,
    "covisitation": 0.0,
}
#: The default profile's segment weights (migration 0009): a product ALS does not know is
#: scored mostly from its predicted factors (:mod:`.coldstart`), with visual similarity;
#: a new shopper gets more of the popular products. Co-visitation weighs 0 here: no
#: weighting of it beat these on every draw of the offline evaluation (docs/figures.md).
DEFAULT_SEGMENTS = {
    "cold_item": {
        "visual": 0.14,
        "collaborative": 0.29,
        "affinity": 0.57,
        "popularity": 0.0,
        "recency": 0.0,
    },
    "new_shopper": {
        "visual": 0.05,
        "collaborative": 0.05,
        "affinity": 0.4,
        "popularity": 0.3,
        "recency": 0.0,
    },
}
#: The default profile's re-ranking (migration 0009): MMR, nearly all relevance.
DEFAULT_DIVERSITY = ("mmr", 0.95)


@dataclass(frozen=True)
class BlendSettings:
    """What a blend needs from a profile, detached from the database row.

    Attributes
    ----------
    weights : dict
        ``{component: weight >= 0}`` for the components in :data:`COMPONENTS`; missing
        components weigh 0.
    diversity : str
        ``"none"``, ``"mmr"`` or ``"category_cap"``.
    diversity_param : float
        MMR's lambda in [0, 1], or the category cap (a whole number >= 1).
    segments : dict
        ``{segment: {component: weight}}`` for segments in :data:`SEGMENTS`: there, these
        weights replace the profile's, component by component (the components a segment
        does not name keep the profile's weights).
    """

    weights: dict
    diversity: str = "mmr"
    diversity_param: float = 0.7
    in_stock_only: bool = True
    exclude_purchased: bool = True
    exclude_current: bool = True
    name: str = ""
    segments: dict = field(default_factory=dict)

    @classmethod
    def from_profile(cls, profile):
        return cls(
            weights=dict(profile.weights),
            diversity=profile.diversity,
            diversity_param=float(profile.diversity_param),
            in_stock_only=profile.in_stock_only,
            exclude_purchased=profile.exclude_purchased,
            exclude_current=profile.exclude_current,
            name=profile.name,
            segments={
                segment: dict(weights)
                for segment, weights in (getattr(profile, "segments", None) or {}).items()
            },
        )

    def segment_weights(self, segment=None):
        """``{component: weight}`` in ``segment`` (the profile's own for ``None`` or a
        segment it does not name)."""
        return {**self.weights, **self.segments.get(segment, {})} if segment else self.weights

    def weight_vector(self, segment=None):
        """Weights in :data:`COMPONENTS` order, scaled to sum to 1, in ``segment``."""
        weights = self.segment_weights(segment)
        w = np.array([float(weights.get(c, 0.0)) for c in COMPONENTS], dtype=np.float64)
        total = w.sum()
        return w / total if total > 0 else w

    def weight_rows(self, segments):
        """One weight vector per candidate, shape ``(len(segments), len(COMPONENTS))``:
        each candidate's segment (``None``: the profile's own weights)."""
        position = {}
        rows = [position.setdefault(s, len(position)) for s in segments]
        if not rows:
            return np.zeros((0, len(COMPONENTS)))
        # One vector per distinct segment, then one row per candidate by index.
        return np.vstack([self.weight_vector(s) for s in position])[rows]


#: Used when the database holds no default profile (it normally does: migrations 0003
#: and 0009, whose profile this equals).
BUILTIN_SETTINGS = BlendSettings(
    weights=dict(DEFAULT_WEIGHTS),
    diversity=DEFAULT_DIVERSITY[0],
    diversity_param=DEFAULT_DIVERSITY[1],
    name="built-in",
    segments={segment: dict(weights) for segment, weights in DEFAULT_SEGMENTS.items()},
)


# -- the arithmetic ------------------------------------------------------------------


def normalise(values):
    """Min-max normalise one component over the candidate set (the rule: step 2 of
    :mod:`recommendations.blending`).

    Parameters
    ----------
    values : array_like of float, shape (n_candidates,)
        Raw scores; NaN for candidates the component did not score.

    Returns
    -------
    ndarray of float64, shape (n_candidates,)
        In [0, 1]; unscored candidates get 0.
    """
    values = np.asarray(values, dtype=np.float64)
    scored = ~np.isnan(values)
    out = np.zeros(values.shape, dtype=np.float64)
    if not scored.any():
        return out
    lo, hi = values[scored].min(), values[scored].max()
    if hi > lo:
        out[scored] = (values[scored] - lo) / (hi - lo)
    elif not scored.all():
        out[scored] = 1.0
    return out


def combine(raw, weights):
    """Normalise each component and take the weighted sum.

    Parameters
    ----------
    raw : ndarray, shape (n_candidates, len(COMPONENTS))
        Raw scores in :data:`COMPONENTS` order, NaN where unscored.
    weights : array_like, shape (len(COMPONENTS),) or (n_candidates, len(COMPONENTS))
        One vector for every candidate, or one per candidate (its segment's,
        :meth:`BlendSettings.weight_rows`); each scaled to sum to 1 here.

    Returns
    -------
    scores : ndarray of float64, shape (n_candidates,)
        In [0, 1].
    contributions : ndarray of float64, shape (n_candidates, len(COMPONENTS))
        The weighted normalised components; ``scores`` is their row sum.
    """
    raw = np.asarray(raw, dtype=np.float64).reshape(-1, len(COMPONENTS))
    weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    totals = weights.sum(axis=1, keepdims=True)
    weights = np.divide(weights, totals, out=np.zeros_like(weights), where=totals > 0)
    normalised = np.column_stack([normalise(raw[:, j]) for j in range(len(COMPONENTS))])
    contributions = normalised * weights
    return contributions.sum(axis=1), contributions


def reasons(contributions, origins, cold=None):
    """The reason of each candidate: its largest contribution's, else its source's.

    Parameters
    ----------
    contributions : ndarray, shape (n_candidates, len(COMPONENTS))
    origins : sequence of str
        The component whose source proposed each candidate first.
    cold : array_like of bool, shape (n_candidates,), optional
        Which candidates are cold items: their collaborative scores are predicted, and
        their reasons say so (:data:`PREDICTED_REASONS`).

    Returns
    -------
    list of str
    """
    contributions = np.asarray(contributions).reshape(-1, len(COMPONENTS))
    cold = np.zeros(len(contributions), bool) if cold is None else np.asarray(cold, bool)
    best = contributions.argmax(axis=1)  # the first maximum: COMPONENTS order breaks ties
    out = []
    for i, j in enumerate(best):
        component = COMPONENTS[j] if contributions[i, j] > 0 else origins[i]
        table = PREDICTED_REASONS if cold[i] and component in PREDICTED_REASONS else REASONS
        out.append(table[component])
    return out


def _mmr(scores, order, similarity, lam, k):
    selected = [order[0]]
    remaining = list(order[1:])
    max_sim = similarity[order[0]].copy()
    while remaining and len(selected) < k:
        rem = np.asarray(remaining)
        value = lam * scores[rem] - (1.0 - lam) * max_sim[rem]
        pick = int(np.argmax(value))  # first maximum: the better-ranked candidate wins ties
        chosen = remaining.pop(pick)
        selected.append(chosen)
        max_sim = np.maximum(max_sim, similarity[chosen])
    return selected


def _category_cap(order, categories, cap, k):
    cap = max(1, int(round(cap)))
    kept, overflow, counts = [], [], {}
    for i in order:
        c = categories[i]
        if counts.get(c, 0) < cap:
            counts[c] = counts.get(c, 0) + 1
            kept.append(i)
            if len(kept) == k:
                return kept
        else:
            overflow.append(i)
    return kept + overflow[: k - len(kept)]


def diversify(scores, k, method="none", param=None, categories=None, embeddings=None):
    """Pick ``k`` candidates, best first, re-ranked for diversity.

    Parameters
    ----------
    scores : ndarray, shape (n_candidates,)
        Blend scores; ties keep candidate order.
    k : int
    method : {"none", "mmr", "category_cap"}
    param : float
        MMR's lambda, or the per-category cap.
    categories : sequence, shape (n_candidates,), optional
        Category of each candidate (needed by ``category_cap``; MMR's fallback similarity).
    embeddings : ndarray, shape (n_candidates, dim), optional
        L2-normalised visual embeddings for MMR; rows of zeros for candidates without one.

    Returns
    -------
    list of int
        Indices into the candidates, at most ``k``.
    """
    scores = np.asarray(scores, dtype=np.float64)
    n = len(scores)
    if n == 0 or k <= 0:
        return []
    order = np.argsort(-scores, kind="stable")
    if method == "none" or n == 1:
        return order[:k].tolist()
    if method == "category_cap":
        if categories is None:
            raise ValueError("the category cap needs the candidates' categories.")
        return _category_cap(order.tolist(), list(categories), param, k)
    if method != "mmr":
        raise ValueError(f"Unknown diversity method {method!r}; expected {DIVERSITY_METHODS}.")
    lam = 0.7 if param is None else float(param)
    # MMR only ever reaches into the head of the ranking; bound its quadratic cost.
    head = order[: max(5 * k, 60)]
    similarity = _similarity(head, categories, embeddings)
    # Relevance on the similarities' scale: the best candidate is 1 whatever share of
    # the weights the components that scored it hold.
    relevance = scores[head] / scores[head[0]] if scores[head[0]] > 0 else scores[head]
    local = _mmr(relevance, np.arange(len(head)), similarity, lam, k)
    return head[local].tolist()


def _similarity(idx, categories, embeddings):
    n = len(idx)
    if categories is not None:
        # Categories as small integers, compared in one array operation rather than as
        # Python objects pair by pair.
        codes = {}
        cats = np.asarray([codes.setdefault(categories[i], len(codes)) for i in idx])
        same_category = (cats[:, None] == cats[None, :]).astype(np.float64)
    else:
        same_category = np.zeros((n, n))
    if embeddings is None:
        return same_category
    emb = np.asarray(embeddings, dtype=np.float64)[idx]
    has = np.linalg.norm(emb, axis=1) > 0
    similarity = emb @ emb.T
    both = has[:, None] & has[None, :]
    return np.where(both, similarity, same_category)
