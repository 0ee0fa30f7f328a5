"""Offline evaluation of a blend profile on the shop's own events.

Protocol
--------
The shop's events (simulated ones included) are split by time with
:func:`recommendations.evaluation.time_split`: the latest ``test_fraction`` of events is
held out. An ALS model (:class:`~recommendations.recommenders.ALSRecommender`, the
``RECOMMENDATIONS_ALS_PARAMETERS``) is fitted in memory on the products with events
before the cutoff; the active model is not touched, nothing is written. Every shopper with
events on both sides then gets a "For you" list built by the shop's own code
(:func:`recommendations.blending.candidates.gather_for_user`,
:func:`~recommendations.blending.candidates.score_candidates` and
:func:`~recommendations.blending.candidates.rank`), fed by an
:class:`~recommendations.blending.asof.AsOfSource`: the shop as it was at the cutoff.

* history: the shopper's latest ``RECOMMENDATIONS_BLEND_HISTORY`` distinct products
  before the cutoff, read as the shop reads them;
* every product the shopper had before the cutoff is left out (it could never be a hit:
  the time split drops such pairs from the test set).

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
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import numpy as np
import scipy.sparse as sp

from lookalike.catalogue import get_adapter
from lookalike.keys import native, to_array
from visualsearch.services.vectors import load_vectors

from ..blending.asof import AsOfSource, capped_popularity
from ..blending.blend import resolve_settings
from ..blending.candidates import Shopper, gather_for_user, rank, score_candidates
from ..blending.core import COMPONENTS, BlendSettings
from ..blending.live import unit_vectors
from ..conf import app_settings
from ..evaluation import catalogue_coverage, intra_list_diversity, ranking_metrics
from ..recommenders import ALSRecommender
from ..services.profiles import clean_weights
from ..services.serving import ActiveModel
from .shop_events import histories, load_events, split

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
    embeddings : ndarray of float64, shape (n_items, dim) or None
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
    """``(n_items, dim)`` L2-normalised float64 vectors in ``product_ids`` order (zeros:
    none), normalised as the live blend normalises them."""
    vectors = unit_vectors(load_vectors(product_ids.tolist()))
    if not vectors:
        return None
    matrix = np.zeros((len(product_ids), len(next(iter(vectors.values())))))
    for i, pid in enumerate(product_ids.tolist()):
        if native(pid) in vectors:
            matrix[i] = vectors[native(pid)]
    return matrix


def _model(train, users, items, params, seed):
    """ALS fitted on the products with events before the cutoff, wrapped as the shop
    wraps its active model; no ``data_to``, so shoppers are scored from their trained
    rows, never from their later events."""
    seen = np.flatnonzero(np.diff(train.tocsc().indptr) > 0)
    als = ALSRecommender(random_state=seed, **params).fit(train[:, seen])
    item_ids = np.asarray([int(items[c]) for c in seen], dtype=np.int64)
    return ActiveModel(version=0, model_id=0, recommender=als, user_keys=users, item_ids=item_ids)


def _widen(matrix, items, column):
    """``matrix``'s columns (products, in the interactions' order) moved to catalogue
    columns: the blend ranks the whole catalogue."""
    to_catalogue = np.asarray([column[int(i)] for i in items], dtype=np.int64)
    coo = matrix.tocoo()
    return sp.csr_matrix(
        (coo.data, (coo.row, to_catalogue[coo.col])), shape=(matrix.shape[0], len(column))
    )


def _source(catalogue, events, weights, cutoff, model, embeddings):
    """The shop at the cutoff, for :func:`gather_for_user`."""
    product_ids, categories, created = catalogue
    column = {native(pid): i for i, pid in enumerate(product_ids.tolist())}
    days = app_settings.POPULAR_DAYS
    window = events.ts < cutoff
    if days:
        window &= events.ts >= cutoff - days * _SECONDS_PER_DAY
    popularity = capped_popularity(
        events.who[window],
        np.asarray([column[p] for p in events.product[window].tolist()], dtype=np.int64),
        weights[window],
        len(product_ids),
        app_settings.MAX_CELL_WEIGHT,
    )
    return AsOfSource(
        product_ids=product_ids,
        categories=categories,
        created=created,
        embeddings=embeddings,
        model=model,
        popularity=popularity,
        cutoff=cutoff,
    )


def _candidates(source, train_rows, users, histories, column, n):
    """Each evaluated shopper's scored candidates: ``(columns, raw, origins)`` lists."""
    half_life = app_settings.RECENCY_HALF_LIFE_DAYS
    out = ([], [], [])
    for row, owned in train_rows:
        user, history = histories.get(users[row], (None, []))
        shopper = Shopper(key=user, history=history)
        exclude = {native(source.product_ids[c]) for c in owned}
        cands, anchor = gather_for_user(source, shopper, exclude, n)
        scored = score_candidates(cands, source, exclude, half_life, anchor=anchor)
        ids = scored.ids if scored is not None else []
        out[0].append(np.asarray([column[pid] for pid in ids], dtype=np.int64))
        out[1].append(scored.raw if scored is not None else np.zeros((0, len(COMPONENTS))))
        out[2].append(scored.origins if scored is not None else [])
    return out


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
    started = time.monotonic()
    catalogue = _catalogue()
    product_ids = catalogue[0]
    if not len(product_ids):
        raise ValueError("The catalogue has no active products to evaluate on.")
    column = {native(pid): i for i, pid in enumerate(product_ids.tolist())}
    events = load_events(include_simulated, column)
    if not len(events.ts):
        raise ValueError(
            "There are no shopper events to evaluate on: run `manage.py simulate_shoppers` first."
        )
    weights, cutoff, train, test, users, items = split(events, test_fraction)
    evaluated = np.flatnonzero((np.diff(test.indptr) > 0) & (np.diff(train.indptr) > 0))
    if not len(evaluated):
        raise ValueError(
            "No shopper has events both before and after the cutoff: nothing to evaluate."
        )
    params = dict(app_settings.ALS_PARAMETERS if als_parameters is None else als_parameters)
    embeddings = _embedding_matrix(product_ids)
    source = _source(
        catalogue, events, weights, cutoff, _model(train, users, items, params, seed), embeddings
    )
    wide = _widen(train, items, column)
    owned = [(row, wide.indices[wide.indptr[row] : wide.indptr[row + 1]]) for row in evaluated]
    shopper_histories = histories(events[events.ts < cutoff], app_settings.BLEND_HISTORY)
    n = app_settings.BLEND_CANDIDATES if candidates is None else candidates
    cands, raw, origins = _candidates(source, owned, users, shopper_histories, column, n)
    before = events.ts < cutoff
    info = {
        "protocol": "time split: the latest events held out; shoppers with events on "
        "both sides; ALS fitted on the earlier events in memory",
        "cutoff": datetime.fromtimestamp(cutoff, tz=UTC).isoformat(),
        "test_fraction": test_fraction,
        "users": int(len(evaluated)),
        "items": int(len(product_ids)),
        "train_events": int(before.sum()),
        "test_events": int((~before).sum()),
        "embedded_items": int(source.has_embedding.sum()) if embeddings is not None else 0,
        "als_parameters": params,
        "prepare_seconds": round(time.monotonic() - started, 3),
    }
    return BlendEvalData(
        product_ids=product_ids,
        categories=catalogue[1],
        embeddings=embeddings,
        test=_widen(test, items, column)[evaluated],
        candidates=cands,
        raw=raw,
        origins=origins,
        info=info,
    )


def _score(data, settings, k):
    """The metrics of ``settings`` over every evaluated shopper's candidates."""
    recommended = np.full((len(data.candidates), k), -1, dtype=np.int64)
    embeddings = data.embeddings
    for u, (cand, raw) in enumerate(zip(data.candidates, data.raw, strict=True)):
        if not len(cand):
            continue
        picked, _, _ = rank(
            raw,
            settings,
            k,
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


def _settings(profile_name, weights, diversity):
    """The :class:`BlendSettings` :func:`evaluate_blend` scores."""
    if weights is not None:
        method, param = diversity if diversity is not None else ("none", 0.0)
        return BlendSettings(
            weights=clean_weights(weights),
            diversity=method,
            diversity_param=param,
            name=profile_name if isinstance(profile_name, str) else "weights",
        )
    settings = resolve_settings(profile_name)
    if diversity is not None:
        settings = replace(settings, diversity=diversity[0], diversity_param=diversity[1])
    return settings


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
    settings = _settings(profile_name, weights, diversity)
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
