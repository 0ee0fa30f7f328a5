"""Offline evaluation of a blend profile on the shop's own events.

Protocol
--------
The shop's events (simulated ones included) are split by time with
:func:`recommendations.evaluation.time_split`: the latest ``test_fraction`` of events is
held out. An ALS model (:class:`~recommendations.recommenders.ALSRecommender`, the
``RECOMMENDATIONS_ALS_PARAMETERS``) is fitted in memory on the earlier part; the active
model is not touched, nothing is written. Every shopper with events on both sides then
gets a "For you" list built exactly as :func:`~.blend.recommend_for_user` builds it (the
same sources, components, normalisation, weights and diversity: :func:`.blend.combine`
and :func:`.blend.diversify`), as of the cutoff:

* history: the shopper's latest ``RECOMMENDATIONS_BLEND_HISTORY`` distinct products
  before the cutoff;
* sources: visual neighbours of the history's mean embedding, ALS item-item neighbours
  of the history, the shopper's ALS top items, the products popular before the cutoff
  (``RECOMMENDATIONS_POPULAR_DAYS``), the newest products;
* every product the shopper had before the cutoff is left out (it could never be a hit:
  the time split drops such pairs from the test set). Stock is not a rule here: today's
  stock says nothing about the past.

The lists are scored against the held-out products with the core metrics of
:mod:`recommendations.evaluation` (precision, recall, MAP and NDCG at ``k``, catalogue
coverage) plus intra-list category diversity, for the profile and for two baselines
under the same protocol: **visual-only** (``{"visual": 1}``) and **ALS-only**
(``{"affinity": 1}``, the ALS model's own ranking), both without re-ranking.

Speed
-----
Everything that does not depend on the weights (the split, the ALS fit, the embeddings,
every shopper's candidates and raw component scores) is computed once by
:func:`prepare_blend_evaluation`; scoring a set of weights is then a few milliseconds
per thousand shoppers. Pass ``data=`` to :func:`evaluate_blend` to reuse it in a grid
search::

    data = prepare_blend_evaluation(k=10)
    for w in grid:
        result = evaluate_blend(weights=w, data=data, baselines=False)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import scipy.sparse as sp

from lookalike.catalogue import get_adapter
from lookalike.keys import native, to_array

from ..conf import app_settings
from ..models import Event
from .blend import COMPONENTS, BlendSettings, combine, diversify, resolve_settings

__all__ = ["BlendEvalData", "evaluate_blend", "prepare_blend_evaluation"]

_SECONDS_PER_DAY = 86400.0
VISUAL_ONLY = BlendSettings(weights={"visual": 1.0}, diversity="none", name="visual-only")
ALS_ONLY = BlendSettings(weights={"affinity": 1.0}, diversity="none", name="als-only")


@dataclass(eq=False)
class BlendEvalData:
    """What :func:`evaluate_blend` needs that does not depend on the weights.

    Attributes
    ----------
    product_ids : ndarray of int64, shape (n_items,)
        Catalogue column of each active product.
    categories : ndarray, shape (n_items,)
    embeddings : ndarray of float32, shape (n_items, dim) or None
        L2-normalised; rows of zeros for products without an embedding.
    test : csr_matrix, shape (n_users, n_items)
        Held-out products of the evaluated shoppers, one row each.
    candidates : list of ndarray of int
        Catalogue columns of each evaluated shopper's candidates, in proposal order.
    raw : list of ndarray, shape (n_candidates, len(COMPONENTS))
        Raw component scores of those candidates, NaN where unscored.
    origins : list of list of str
        The source that proposed each candidate first.
    info : dict
        Figures describing the split, for the report.
    """

    product_ids: np.ndarray
    categories: np.ndarray
    embeddings: np.ndarray | None
    test: sp.csr_matrix
    candidates: list
    raw: list
    origins: list
    info: dict = field(default_factory=dict)


def _catalogue():
    """The shown products, in key order: ``(ids, main categories, creation timestamps)``."""
    adapter = get_adapter()
    products = adapter.annotate(adapter.get_queryset()).order_by("pk")
    rows = [
        (p.pk, adapter.get_category_key(p), adapter.get_created(p)) for p in products.iterator()
    ]
    ids = to_array(r[0] for r in rows)
    categories = np.asarray([r[1] for r in rows], dtype=object)
    created = np.asarray(
        [r[2].timestamp() if r[2] is not None else np.nan for r in rows], dtype=np.float64
    )
    return ids, categories, created


def _embedding_matrix(product_ids):
    """``(n_items, dim)`` L2-normalised vectors in ``product_ids`` order (zeros: none)."""
    from visualsearch.services.vectors import load_vectors

    vectors = load_vectors(product_ids.tolist())
    if not vectors:
        return None
    dim = len(next(iter(vectors.values())))
    matrix = np.zeros((len(product_ids), dim), dtype=np.float32)
    for i, pid in enumerate(product_ids.tolist()):
        v = vectors.get(native(pid))
        if v is not None:
            norm = np.linalg.norm(v)
            if norm > 0:
                matrix[i] = v / norm
    return matrix


def _events(include_simulated):
    """Every usable event as arrays: shopper key, product id, kind, epoch seconds."""
    events = Event.objects.exclude(user__isnull=True, session_key="")
    if not include_simulated:
        events = events.filter(simulated=False)
    rows = list(events.values_list("user_id", "session_key", "product_id", "kind", "created_at"))
    who = np.asarray([f"u:{u}" if u is not None else f"s:{s}" for u, s, _, _, _ in rows], dtype=str)
    product = np.fromiter((r[2] for r in rows), dtype=np.int64, count=len(rows))
    kind = np.asarray([r[3] for r in rows], dtype=str)
    ts = np.fromiter((r[4].timestamp() for r in rows), dtype=np.float64, count=len(rows))
    return who, product, kind, ts


def _top(scores, n):
    """Columns of the ``n`` best finite scores, best first."""
    finite = np.isfinite(scores)
    n = min(n, int(finite.sum()))
    if n <= 0:
        return np.empty(0, dtype=np.int64)
    masked = np.where(finite, scores, -np.inf)
    part = np.argpartition(-masked, n - 1)[:n]
    return part[np.argsort(-masked[part], kind="stable")]


def prepare_blend_evaluation(
    k=10,
    *,
    test_fraction=0.25,
    include_simulated=True,
    als_parameters=None,
    candidates=None,
    seed=0,
):
    """Split the events, fit ALS on the earlier part and build every shopper's candidates.

    Parameters
    ----------
    k : int
        Only recorded in ``info``; candidates do not depend on it.
    test_fraction : float
        Share of the events (the latest) held out.
    include_simulated : bool
        Whether events of ``simulate_shoppers`` count (the default: they are the data).
    als_parameters : dict, optional
        ALS parameters; ``RECOMMENDATIONS_ALS_PARAMETERS`` by default.
    candidates : int, optional
        Candidates per source; ``RECOMMENDATIONS_BLEND_CANDIDATES`` by default.
    seed : int

    Returns
    -------
    BlendEvalData

    Raises
    ------
    ValueError
        When there are no events, or no shopper has events on both sides of the cutoff.
    """
    from ..datasets import Interactions
    from ..evaluation import time_split
    from ..recommenders import ALSRecommender
    from .matrix import event_weights

    started = time.monotonic()
    product_ids, categories, created = _catalogue()
    if not len(product_ids):
        raise ValueError("The catalogue has no active products to evaluate on.")
    column = {native(pid): i for i, pid in enumerate(product_ids.tolist())}
    who, product, kind, ts = _events(include_simulated)
    known = np.fromiter((native(p) in column for p in product), dtype=bool, count=len(product))
    who, product, kind, ts = who[known], product[known], kind[known], ts[known]
    if not len(ts):
        raise ValueError(
            "There are no shopper events to evaluate on: run `manage.py simulate_shoppers` first."
        )
    weights = event_weights(kind, half_life_days=None)
    interactions = Interactions(
        user_ids=who, item_ids=product.astype(str), weights=weights, timestamps=ts, name="shop"
    )
    cutoff = float(np.quantile(ts, 1 - test_fraction, method="higher"))
    train, test = time_split(interactions, cutoff=cutoff)
    # time_split's columns are the products with events, in string order; the blend ranks
    # the whole catalogue, so move them to catalogue columns.
    _, _, users, items = interactions.encode()
    by_text = {str(pid): i for pid, i in column.items()}  # the interactions' ids are text
    to_catalogue = np.asarray([by_text[str(i)] for i in items], dtype=np.int64)
    n_items = len(product_ids)

    def widen(matrix):
        coo = matrix.tocoo()
        return sp.csr_matrix(
            (coo.data, (coo.row, to_catalogue[coo.col])), shape=(matrix.shape[0], n_items)
        )

    train, test = widen(train), widen(test)
    evaluated = np.flatnonzero((np.diff(test.indptr) > 0) & (np.diff(train.indptr) > 0))
    if not len(evaluated):
        raise ValueError(
            "No shopper has events both before and after the cutoff: nothing to evaluate."
        )
    params = dict(app_settings.ALS_PARAMETERS if als_parameters is None else als_parameters)
    als = ALSRecommender(random_state=seed, **params).fit(train)
    user_factors = np.asarray(als.user_factors, dtype=np.float32)
    item_factors = np.asarray(als.item_factors, dtype=np.float32)
    norms = np.linalg.norm(item_factors, axis=1, keepdims=True)
    unit_factors = item_factors / np.maximum(norms, 1e-12)
    has_factors = np.diff(train.tocsc().indptr) > 0  # products seen in training

    embeddings = _embedding_matrix(product_ids)
    has_embedding = np.linalg.norm(embeddings, axis=1) > 0 if embeddings is not None else None

    # Popularity and recency as of the cutoff.
    before = ts < cutoff
    days = app_settings.POPULAR_DAYS
    window = before if days is None else before & (ts >= cutoff - days * _SECONDS_PER_DAY)
    popularity = np.zeros(n_items)
    np.add.at(
        popularity,
        np.fromiter((column[native(p)] for p in product[window]), np.int64, int(window.sum())),
        weights[window],
    )
    age_days = np.floor(np.clip(cutoff - created, 0, None) / _SECONDS_PER_DAY)
    recency = 0.5 ** (age_days / float(app_settings.RECENCY_HALF_LIFE_DAYS))
    recency[created > cutoff] = np.nan  # not in the catalogue yet at the cutoff
    n = app_settings.BLEND_CANDIDATES if candidates is None else candidates
    popular_pool = _top(np.where(popularity > 0, popularity, np.nan), n)
    newest_pool = _top(np.where(np.isnan(recency), np.nan, -np.nan_to_num(cutoff - created)), n)

    # Each shopper's latest distinct products before the cutoff.
    user_row = {key: i for i, key in enumerate(users.tolist())}
    order = np.argsort(-ts[before], kind="stable")
    history = {}
    limit = app_settings.BLEND_HISTORY
    for key, pid in zip(who[before][order].tolist(), product[before][order].tolist(), strict=True):
        row = user_row[key]
        seen = history.setdefault(row, [])
        col = column[pid]
        if len(seen) < limit and col not in seen:
            seen.append(col)

    cands_out, raw_out, origins_out = [], [], []
    affinity_all = user_factors[evaluated] @ item_factors.T
    for position, row in enumerate(evaluated.tolist()):
        owned = train.indices[train.indptr[row] : train.indptr[row + 1]]
        blocked = np.zeros(n_items, dtype=bool)
        blocked[owned] = True
        recent = history.get(row, [])
        proposals = []  # (component, columns)
        visual_scores = None
        if embeddings is not None:
            vectors = [embeddings[c] for c in recent if has_embedding[c]]
            if vectors:
                taste = np.mean(vectors, axis=0)
                if np.linalg.norm(taste) > 0:
                    taste = taste / np.linalg.norm(taste)
                    visual_scores = np.where(has_embedding, embeddings @ taste, np.nan)
                    proposals.append(("visual", _top(np.where(blocked, np.nan, visual_scores), n)))
        collaborative = None
        known_recent = [c for c in recent if has_factors[c]]
        if known_recent:
            per_item = max(n // len(known_recent), 10)
            collaborative = np.full(n_items, np.nan)
            for c in known_recent:
                sims = unit_factors @ unit_factors[c]
                sims[c] = np.nan
                top = _top(np.where(blocked, np.nan, sims), per_item)
                collaborative[top] = np.fmax(collaborative[top], sims[top])
                proposals.append(("collaborative", top))
        affinity_scores = np.where(has_factors, affinity_all[position], np.nan)
        affinity_top = _top(np.where(blocked, np.nan, affinity_scores), n)
        proposals.append(("affinity", affinity_top))
        proposals.append(("popularity", popular_pool))
        proposals.append(("recency", newest_pool))

        origin = {}
        for component, columns in proposals:
            for c in columns.tolist():
                if not blocked[c] and c not in origin:
                    origin[c] = component
        cand = np.fromiter(origin, dtype=np.int64, count=len(origin))
        raw = np.full((len(cand), len(COMPONENTS)), np.nan)
        if visual_scores is not None:
            raw[:, 0] = visual_scores[cand]
        if collaborative is not None:
            raw[:, 1] = collaborative[cand]
        # Like the online blend: ALS scores only for the shopper's top list.
        affinity = np.full(n_items, np.nan)
        affinity[affinity_top] = affinity_scores[affinity_top]
        raw[:, 2] = affinity[cand]
        raw[:, 3] = np.where(popularity[cand] > 0, popularity[cand], np.nan)
        raw[:, 4] = recency[cand]
        cands_out.append(cand)
        raw_out.append(raw)
        origins_out.append(list(origin.values()))

    info = {
        "protocol": "time split: the latest events held out; shoppers with events on "
        "both sides; ALS fitted on the earlier events in memory",
        "cutoff": datetime.fromtimestamp(cutoff, tz=UTC).isoformat(),
        "test_fraction": test_fraction,
        "users": int(len(evaluated)),
        "items": int(n_items),
        "train_events": int(before.sum()),
        "test_events": int((~before).sum()),
        "embedded_items": int(has_embedding.sum()) if has_embedding is not None else 0,
        "als_parameters": params,
        "prepare_seconds": round(time.monotonic() - started, 3),
    }
    return BlendEvalData(
        product_ids=product_ids,
        categories=categories,
        embeddings=embeddings,
        test=test[evaluated],
        candidates=cands_out,
        raw=raw_out,
        origins=origins_out,
        info=info,
    )


def _score(data, settings, k):
    from ..evaluation import catalogue_coverage, intra_list_diversity, ranking_metrics

    weights = settings.weight_vector()
    recommended = np.full((len(data.candidates), k), -1, dtype=np.int64)
    embeddings = data.embeddings
    for u, (cand, raw) in enumerate(zip(data.candidates, data.raw, strict=True)):
        if not len(cand):
            continue
        scores, _ = combine(raw, weights)
        picked = diversify(
            scores,
            k,
            settings.diversity,
            settings.diversity_param,
            categories=data.categories[cand],
            embeddings=embeddings[cand] if embeddings is not None else None,
        )
        recommended[u, : len(picked)] = cand[picked]
    metrics = ranking_metrics(recommended, data.test, k)
    return {
        f"precision_at_{k}": metrics["precision"],
        f"recall_at_{k}": metrics["recall"],
        f"map_at_{k}": metrics["map"],
        f"ndcg_at_{k}": metrics["ndcg"],
        "coverage": catalogue_coverage(recommended, len(data.product_ids)),
        "diversity": intra_list_diversity(recommended, data.categories),
    }


def evaluate_blend(
    profile_name=None,
    k=10,
    *,
    weights=None,
    diversity=None,
    data=None,
    baselines=True,
    **prepare_options,
):
    """Score a blend profile (or explicit weights) against visual-only and ALS-only.

    Parameters
    ----------
    profile_name : str, BlendProfile or None
        The profile to evaluate; the default profile when None and no ``weights``.
    k : int
    weights : dict, optional
        ``{component: weight}`` to evaluate instead of a stored profile (notebooks'
        grid searches); the diversity then comes from ``diversity`` or is none.
    diversity : (method, parameter), optional
        Overrides the profile's re-ranking, e.g. ``("mmr", 0.8)`` or ``("none", 0)``.
    data : BlendEvalData, optional
        From :func:`prepare_blend_evaluation`, to skip the split and the ALS fit.
    baselines : bool
        Also score visual-only and ALS-only.
    **prepare_options
        Passed to :func:`prepare_blend_evaluation` when ``data`` is not given.

    Returns
    -------
    dict
        ``profile``, ``weights``, ``diversity``, ``k``, the split's figures, ``blend``
        (``precision_at_k``, ``recall_at_k``, ``map_at_k``, ``ndcg_at_k``, ``coverage``,
        ``diversity``) and, with ``baselines``, ``visual_only`` and ``als_only`` alike;
        ``seconds``.

    Raises
    ------
    recommendations.services.profiles.UnknownProfile
        For an unknown profile name.
    ValueError
        For bad weights, or too few events to evaluate.
    """
    started = time.monotonic()
    if weights is not None:
        from .profiles import _clean_weights

        method, param = diversity if diversity is not None else ("none", 0.0)
        settings = BlendSettings(
            weights=_clean_weights(weights),
            diversity=method,
            diversity_param=param,
            name=profile_name if isinstance(profile_name, str) else "weights",
        )
    else:
        settings = resolve_settings(profile_name)
        if diversity is not None:
            settings = BlendSettings(
                **{**settings.__dict__, "diversity": diversity[0], "diversity_param": diversity[1]}
            )
    if data is None:
        data = prepare_blend_evaluation(k, **prepare_options)
    result = {
        "profile": settings.name,
        "weights": {c: float(settings.weights.get(c, 0.0)) for c in COMPONENTS},
        "diversity": {"method": settings.diversity, "parameter": settings.diversity_param},
        "k": k,
        **data.info,
        "blend": _score(data, settings, k),
    }
    if baselines:
        result["visual_only"] = _score(data, VISUAL_ONLY, k)
        result["als_only"] = _score(data, ALS_ONLY, k)
    result["seconds"] = round(time.monotonic() - started, 3)
    return result
