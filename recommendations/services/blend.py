"""Blend visual similarity, collaborative filtering, popularity and recency into one list.

The "Similar items" strip of a product page (:func:`blend_similar`) and the "For you"
strip of the home page (:func:`recommend_for_user`) are both built in four steps.

1. **Candidates.** Every source proposes up to ``RECOMMENDATIONS_BLEND_CANDIDATES``
   products: the nearest visual neighbours (pgvector) of the product, or of the
   shopper's recent products; the active ALS model's similar items of the same
   product(s); the ALS model's top items for the shopper (a signed-in user, or an
   anonymous session once it has a few events: the model folds the session in); the
   popular products; the newest products. The last two make sure a strip is never
   empty: with no model, no embeddings and no events, the newest products remain.

2. **Components.** Each candidate gets one raw score per component:

   ``visual``
       cosine similarity of its embedding (``VISUALSEARCH_ENCODER``) to the product's,
       or to the mean of the shopper's recent products' embeddings; computed for every
       candidate that has an embedding, not only for the visual neighbours;
   ``collaborative``
       ALS item-item similarity to the product (the best over the recent products);
   ``affinity``
       the ALS score of the item for the shopper;
   ``popularity``
       the event-kind weighted count of its events (``RECOMMENDATIONS_EVENT_WEIGHTS``)
       over the last ``RECOMMENDATIONS_POPULAR_DAYS`` days; products without events have
       no score;
   ``recency``
       ``0.5 ** (age in whole days / RECOMMENDATIONS_RECENCY_HALF_LIFE_DAYS)``; whole
       days, so that products created together tie instead of being ranked by the
       milliseconds between their inserts.

   **Normalisation (one rule for every component): min-max within the candidate set.**
   A component's raw scores are mapped linearly so that the lowest score among the
   candidates becomes 0 and the highest 1. A candidate the component did not score
   (outside a source's top list, no embedding, no events) takes the component's lowest
   score, since all a top list says about it is "no better than the last one listed";
   it therefore normalises to 0. When every scored candidate has the same score, the
   component only tells scored from unscored candidates: scored ones get 1 and unscored
   ones 0, or everyone 0 when every candidate was scored (the component then cannot tell
   them apart and adds nothing). Min-max, unlike a rank transform, keeps how much better
   the best candidates are; doing it within the candidate set makes scales as different
   as cosine similarities, ALS dot products and event counts comparable.

3. **Weighted sum.** The profile's weights (:class:`~recommendations.models.BlendProfile`,
   scaled to sum to 1) multiply the normalised components; a candidate's score is their
   sum, in [0, 1]. Its ``components`` are the weighted terms, and its reason is the one
   of the largest term: "Looks similar", "Shoppers who viewed this also viewed",
   "Picked for you", "Popular now" or "New in". A candidate with no term above zero
   (a fallback) takes the reason of the source that proposed it.

4. **Rules and diversity.** Inactive products never appear; depending on the profile,
   out-of-stock products, products the shopper bought and the current product (on a
   product page; the shopper's recent products in "For you") are left out before
   scoring. The ranked list is then re-ranked for diversity by the profile's method:

   ``mmr``
       maximal marginal relevance (Carbonell & Goldstein 1998): pick, one at a time,
       the candidate maximising ``lambda * relevance - (1 - lambda) * max similarity to
       those already picked``, relevance being the score over the best score and
       similarity the cosine of visual embeddings (for a product without an embedding:
       1 within its category, 0 across); ``lambda`` is the profile's parameter, 1
       meaning relevance only;
   ``category_cap``
       walk the ranked list and keep at most ``parameter`` products per category; the cap
       is relaxed only when the candidates cannot otherwise fill the ``k`` slots;
   ``none``
       keep the ranking.

Steps 2 to 4 on arrays (:func:`normalise`, :func:`combine`, :func:`reasons`,
:func:`diversify`) know nothing of the database, so the offline evaluation
(:mod:`recommendations.services.blend_eval`) scores exactly what the shop serves.

Profiles are read from the database on every call, so a newly published default is
served at once.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace

import numpy as np
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from lookalike.catalogue import CREATED, get_adapter

from ..conf import app_settings

logger = logging.getLogger(__name__)

__all__ = [
    "COMPONENTS",
    "REASONS",
    "BlendSettings",
    "Recommendation",
    "blend_similar",
    "combine",
    "diversify",
    "newest_recommendations",
    "normalise",
    "product_model",
    "reasons",
    "recommend_for_user",
    "resolve_settings",
]

#: Blend components, in the order their reasons win ties.
COMPONENTS = ("visual", "collaborative", "affinity", "popularity", "recency")

REASONS = {
    "visual": _("Looks similar"),
    "collaborative": _("Shoppers who viewed this also viewed"),
    "affinity": _("Picked for you"),
    "popularity": _("Popular now"),
    "recency": _("New in"),
}

DIVERSITY_METHODS = ("none", "mmr", "category_cap")

_SECONDS_PER_DAY = 86400.0


# -- settings -------------------------------------------------------------------------


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
    """

    weights: dict
    diversity: str = "mmr"
    diversity_param: float = 0.7
    in_stock_only: bool = True
    exclude_purchased: bool = True
    exclude_current: bool = True
    name: str = ""

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
        )

    def weight_vector(self):
        """Weights in :data:`COMPONENTS` order, scaled to sum to 1."""
        w = np.array([float(self.weights.get(c, 0.0)) for c in COMPONENTS], dtype=np.float64)
        total = w.sum()
        return w / total if total > 0 else w


#: Used when the database holds no default profile (it normally does: migration 0003).
BUILTIN_SETTINGS = BlendSettings(
    weights={
        "visual": 0.4,
        "collaborative": 0.3,
        "affinity": 0.15,
        "popularity": 0.1,
        "recency": 0.05,
    },
    name="built-in",
)


def resolve_settings(profile=None):
    """Turn a ``BlendProfile``, a profile name, a :class:`BlendSettings` or ``None`` (the
    default profile) into :class:`BlendSettings`.

    Raises
    ------
    recommendations.services.profiles.UnknownProfile
        For a name no profile has.
    """
    if isinstance(profile, BlendSettings):
        return profile
    from .profiles import get_profile

    row = get_profile(profile)
    return BUILTIN_SETTINGS if row is None else BlendSettings.from_profile(row)


# -- the pure core ------------------------------------------------------------------


def normalise(values):
    """Min-max normalise one component over the candidate set (rule: module docstring).

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
    weights : array_like, shape (len(COMPONENTS),)
        Scaled to sum to 1 here.

    Returns
    -------
    scores : ndarray of float64, shape (n_candidates,)
        In [0, 1].
    contributions : ndarray of float64, shape (n_candidates, len(COMPONENTS))
        The weighted normalised components; ``scores`` is their row sum.
    """
    raw = np.asarray(raw, dtype=np.float64).reshape(-1, len(COMPONENTS))
    weights = np.asarray(weights, dtype=np.float64)
    if weights.sum() > 0:
        weights = weights / weights.sum()
    normalised = np.column_stack([normalise(raw[:, j]) for j in range(len(COMPONENTS))])
    contributions = normalised * weights[None, :]
    return contributions.sum(axis=1), contributions


def reasons(contributions, origins):
    """The reason of each candidate: its largest contribution's, else its source's.

    Parameters
    ----------
    contributions : ndarray, shape (n_candidates, len(COMPONENTS))
    origins : sequence of str
        The component whose source proposed each candidate first.

    Returns
    -------
    list of str
    """
    contributions = np.asarray(contributions).reshape(-1, len(COMPONENTS))
    best = contributions.argmax(axis=1)  # the first maximum: COMPONENTS order breaks ties
    return [
        REASONS[COMPONENTS[j]] if contributions[i, j] > 0 else REASONS[origins[i]]
        for i, j in enumerate(best)
    ]


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
        cats = np.asarray([categories[i] for i in idx], dtype=object)
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


# -- results ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Recommendation:
    """One recommended product.

    Attributes
    ----------
    product : Model instance
        The product (``LOOKALIKE_PRODUCT_MODEL``).
    score : float
        Blend score in [0, 1].
    reason : str
        Shown under the product ("Looks similar", ...).
    components : dict
        ``{component: weighted normalised score}`` for every component; they sum to
        ``score``.
    """

    product: object
    score: float
    reason: str
    components: dict = field(default_factory=dict)


# -- database side -----------------------------------------------------------------------


def product_model():
    """The shop's product model (``LOOKALIKE_PRODUCT_MODEL``)."""
    return get_adapter().get_product_model()


def _eligible_products(settings, filters=None):
    """Products a blend may ever show under these rules and the caller's filters (a
    visual-search ``Filters``: category, price, stock), with the adapter's values
    (category, creation time) attached."""
    adapter = get_adapter()
    queryset = adapter.get_queryset()
    if settings.in_stock_only:
        queryset = adapter.filter_in_stock(queryset)
    if filters is not None and filters.narrows:
        # As a sub-query, so that the adapter's filters and its annotations never meet.
        queryset = queryset.filter(pk__in=_filtered(filters).values("pk"))
    return adapter.annotate(queryset)


def _filtered(filters):
    adapter = get_adapter()
    queryset = adapter.get_queryset()
    if filters.category_id is not None:
        queryset = adapter.filter_category(queryset, filters.category_id)
    if filters.min_price is not None or filters.max_price is not None:
        queryset = adapter.filter_price(queryset, filters.min_price, filters.max_price)
    if filters.in_stock:
        queryset = adapter.filter_in_stock(queryset)
    return queryset


@dataclass
class _Shopper:
    user_id: int | None
    session_key: str | None
    history: list = field(default_factory=list)  # latest distinct product ids, newest first
    purchased: set = field(default_factory=set)


def _shopper(user, session_key, settings):
    user_id = user.pk if user is not None and getattr(user, "is_authenticated", False) else None
    session_key = session_key or None
    shopper = _Shopper(user_id, session_key)
    if user_id is None and not session_key:
        return shopper
    from .matrix import shopper_events

    recent = shopper_events(user_id, session_key).order_by("-created_at", "-id")
    seen = []
    for pid in recent.values_list("product_id", flat=True)[: 10 * app_settings.BLEND_HISTORY]:
        if pid not in seen:
            seen.append(pid)
            if len(seen) == app_settings.BLEND_HISTORY:
                break
    shopper.history = seen
    if settings.exclude_purchased:
        from .serving import purchased_product_ids

        shopper.purchased = set(purchased_product_ids(user_id, session_key))
    return shopper


def _active_model():
    from .serving import get_active_model

    try:
        return get_active_model()
    except Exception:  # a broken artefact must not take the shop's pages down
        logger.exception("The active recommender model could not be loaded; blending without it.")
        return None


def _embeddings(product_ids):
    """``{product id: L2-normalised float64 vector}`` for the configured encoder."""
    from visualsearch.services.vectors import load_vectors

    out = {}
    for pid, vector in load_vectors(product_ids).items():
        v = vector.astype(np.float64)
        norm = np.linalg.norm(v)
        if norm > 0:
            out[pid] = v / norm
    return out


def _visual_neighbours(product_id=None, vector=None, *, n, settings, exclude, filters=None):
    """Nearest products by image under the caller's filters, from the pgvector index; none
    when not indexed."""
    from visualsearch.services import search

    filters = replace(
        filters or search.Filters(),
        in_stock=settings.in_stock_only or (filters is not None and filters.in_stock),
        exclude_ids=tuple(exclude),
    )
    try:
        if product_id is not None:
            hits = search.similar_to_product(product_id, k=n, filters=filters)
        else:
            hits = search.search_by_vector(vector, k=n, filters=filters)
    except search.NotIndexed:
        return []
    return [(hit.product_id, float(hit.score)) for hit in hits]


def _popularity(product_ids):
    """Event-kind weighted counts of the products' recent events, each shopper's share
    capped as in "Popular now" (absent: none)."""
    from .serving import popularity_ranking

    return dict(
        popularity_ranking(
            app_settings.EVENT_WEIGHTS, days=app_settings.POPULAR_DAYS, product_ids=product_ids
        )
    )


def _newest(n, settings, exclude, filters=None):
    adapter = get_adapter()
    queryset = _eligible_products(settings, filters).exclude(pk__in=list(exclude))
    if adapter.created_expression() is None:
        return list(queryset.order_by("-pk").values_list("pk", flat=True)[:n])
    return list(
        queryset.order_by(F(CREATED).desc(nulls_last=True), "-pk").values_list("pk", flat=True)[:n]
    )


def newest_recommendations(k, settings=BUILTIN_SETTINGS):
    """The newest eligible products, reason "New in": the last resort of the widgets."""
    ids = _newest(k, settings, ())
    products = _eligible_products(settings).in_bulk(ids)
    return [
        Recommendation(products[pid], 0.0, REASONS["recency"], {}) for pid in ids if pid in products
    ]


def _popular(n, exclude):
    from .serving import popular_products

    return popular_products(n, days=app_settings.POPULAR_DAYS, exclude_ids=tuple(exclude))


class _Candidates:
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


def _gather_common(cands, shopper, model, settings, exclude, n, filters=None):
    """Sources shared by both widgets: the shopper's ALS items, popular and newest."""
    if model is not None and (shopper.user_id is not None or shopper.session_key):
        try:
            cands.add(
                "affinity",
                model.recommend(
                    user_id=shopper.user_id,
                    session_key=shopper.session_key,
                    k=n,
                    exclude_ids=tuple(exclude),
                ),
            )
        except Exception:
            logger.exception("ALS recommendations failed for a shopper; blending without them.")
    cands.propose("popularity", [pid for pid, _ in _popular(n, exclude)])
    cands.propose("recency", _newest(n, settings, exclude, filters))


def _finish(cands, settings, k, exclude, anchor=None, filters=None):
    """Score, filter, diversify and hydrate the candidates (steps 2 to 4)."""
    ids = [pid for pid in cands.origin if pid not in exclude]
    products = _eligible_products(settings, filters).in_bulk(ids)
    ids = [pid for pid in ids if pid in products]
    if not ids:
        return []
    embeddings = _embeddings(ids)
    n = len(ids)
    raw = np.full((n, len(COMPONENTS)), np.nan)
    col = {c: j for j, c in enumerate(COMPONENTS)}
    if anchor is not None:
        for i, pid in enumerate(ids):
            if pid in embeddings:
                raw[i, col["visual"]] = float(embeddings[pid] @ anchor)
    for component in ("visual", "collaborative", "affinity"):
        scores = cands.raw[component]
        for i, pid in enumerate(ids):
            if np.isnan(raw[i, col[component]]) and pid in scores:
                raw[i, col[component]] = scores[pid]
    popularity = _popularity(ids)
    adapter = get_adapter()
    now = timezone.now()
    half_life = float(app_settings.RECENCY_HALF_LIFE_DAYS)
    for i, pid in enumerate(ids):
        if pid in popularity:
            raw[i, col["popularity"]] = popularity[pid]
        when = adapter.get_created(products[pid])
        if when is not None:
            # Whole days: products loaded together must not be told apart by the
            # milliseconds between their inserts, which min-max would blow up to [0, 1].
            age = max((now - when).total_seconds() // _SECONDS_PER_DAY, 0.0)
            raw[i, col["recency"]] = 0.5 ** (age / half_life)
    scores, contributions = combine(raw, settings.weight_vector())
    categories = [adapter.get_category_key(products[pid]) for pid in ids]
    emb_matrix = None
    if embeddings:
        dim = len(next(iter(embeddings.values())))
        emb_matrix = np.zeros((n, dim))
        for i, pid in enumerate(ids):
            if pid in embeddings:
                emb_matrix[i] = embeddings[pid]
    picked = diversify(
        scores,
        k,
        settings.diversity,
        settings.diversity_param,
        categories=categories,
        embeddings=emb_matrix,
    )
    why = reasons(contributions[picked], [cands.origin[ids[i]] for i in picked])
    return [
        Recommendation(
            product=products[ids[i]],
            score=float(scores[i]),
            reason=reason,
            components={c: float(contributions[i, j]) for j, c in enumerate(COMPONENTS)},
        )
        for i, reason in zip(picked, why, strict=True)
    ]


# -- public functions ------------------------------------------------------------------


def blend_similar(product, *, user=None, session_key=None, profile=None, k=12, filters=None):
    """Products like ``product``, personalised for the shopper: the "Similar items" strip.

    Parameters
    ----------
    product : Model instance or int
        The product being viewed (or its id).
    user : User, optional
        The signed-in shopper; anonymous users count as none.
    session_key : str, optional
        The shopper's session, which personalises an anonymous shopper after a few events.
    profile : BlendProfile, str or None
        The profile (or its name); ``None`` for the default profile.
    k : int
    filters : visualsearch.services.search.Filters, optional
        Only products in this category, price range or stock (the API's filters): every
        source's candidates are held to them, on top of the profile's rules.

    Returns
    -------
    list of Recommendation
        At most ``k``, best first; empty only when no product qualifies at all.

    Raises
    ------
    recommendations.services.profiles.UnknownProfile
        For an unknown profile name.
    """
    settings = resolve_settings(profile)
    product_id = getattr(product, "pk", product)
    shopper = _shopper(user, session_key, settings)
    exclude = set(shopper.purchased)
    if settings.exclude_current:
        exclude.add(product_id)
    n = app_settings.BLEND_CANDIDATES
    cands = _Candidates()
    cands.add(
        "visual",
        _visual_neighbours(product_id, n=n, settings=settings, exclude=exclude, filters=filters),
    )
    model = _active_model()
    if model is not None:
        cands.add("collaborative", model.similar_items(product_id, n))
    _gather_common(cands, shopper, model, settings, exclude, n, filters)
    anchor = _embeddings([product_id]).get(product_id)
    return _finish(cands, settings, k, exclude, anchor=anchor, filters=filters)


def recommend_for_user(*, user=None, session_key=None, profile=None, k=12):
    """Products for the shopper: the "For you" strip.

    A signed-in user or an anonymous session with events gets products like their
    recent ones (visual and ALS item-item) and the ALS model's picks for them; a shopper
    with no events gets popular products, or the newest when nothing has events yet.

    Parameters and return value as :func:`blend_similar`, without ``product``; the
    profile's "exclude current" rule leaves out the shopper's recent products.
    """
    settings = resolve_settings(profile)
    shopper = _shopper(user, session_key, settings)
    exclude = set(shopper.purchased)
    if settings.exclude_current:
        exclude.update(shopper.history)
    n = app_settings.BLEND_CANDIDATES
    cands = _Candidates()
    anchor = None
    if shopper.history:
        history_embeddings = _embeddings(shopper.history)
        if history_embeddings:
            taste = np.mean(
                [history_embeddings[p] for p in shopper.history if p in history_embeddings], axis=0
            )
            norm = np.linalg.norm(taste)
            if norm > 0:
                anchor = taste / norm
                cands.add(
                    "visual",
                    _visual_neighbours(
                        vector=anchor.astype(np.float32), n=n, settings=settings, exclude=exclude
                    ),
                )
    model = _active_model()
    if model is not None:
        per_item = max(n // max(len(shopper.history), 1), 10)
        for pid in shopper.history:
            cands.add("collaborative", model.similar_items(pid, per_item))
    _gather_common(cands, shopper, model, settings, exclude, n)
    return _finish(cands, settings, k, exclude, anchor=anchor)
