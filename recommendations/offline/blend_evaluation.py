"""Offline evaluation of a blend profile on the shop's own events.

Protocol
--------
The shop's events (simulated ones included) are split by time with
:func:`recommendations.evaluation.time_split`: the latest ``test_fraction`` of events is
held out. Before the cutoff, the whole history of a ``cold_share`` of the products with
events is held out too (they become cold products, as if nobody had touched them yet), and
all but the latest two events of a ``new_share`` of the shoppers (they become new
shoppers); both drawn with ``seed`` (:func:`.segments.held_out_history`). An ALS model
(:class:`~recommendations.recommenders.ALSRecommender`, the ``RECOMMENDATIONS_ALS_PARAMETERS``)
and its cold-start map (:mod:`recommendations.blending.coldstart`) are fitted in memory on
the rest of the events before the cutoff, as training fits them; the active model is not
touched, nothing is written. Every shopper with events on both sides then gets a "For you"
list built by the shop's own code
(:func:`recommendations.blending.candidates.gather_for_user`,
:func:`~recommendations.blending.candidates.score_candidates` and
:func:`~recommendations.blending.candidates.rank`), fed by an
:class:`~recommendations.blending.asof.AsOfSource`: the shop as it was at the cutoff.

* history: the shopper's latest ``RECOMMENDATIONS_BLEND_HISTORY`` distinct products
  before the cutoff, read as the shop reads them;
* every product the shopper had before the cutoff is left out (it could never be a hit:
  the time split drops such pairs from the test set).

Each candidate is scored with its segment's weights and the cold candidates get their
predicted collaborative scores (:mod:`recommendations.blending.segments`), as served.

The lists are scored against the held-out products with the core metrics of
:mod:`recommendations.evaluation` (precision, recall, MAP and NDCG at ``k``, catalogue
coverage), intra-list category diversity and the number of shoppers, for the profile and
for four single sources under the same protocol, without re-ranking and with their own
scores only (no predicted factors): **visual-only** (``{"visual": 1}``), **ALS-only**
(``{"affinity": 1}``, the ALS model's own ranking), **popularity-only** and
**covisitation-only** (the products looked at with the shopper's). They are reported for
every segment of :data:`.segments.PROTOCOLS` (``all``, ``cold_items``: the cold products
ranked alone, ``new_shoppers``, ``regulars``), whose protocols the result carries.

Speed
-----
Everything that does not depend on the weights (the split, the ALS fit, the embeddings,
every shopper's candidates and raw component scores) is computed once by
:func:`prepare_blend_evaluation`; pass it as ``data=`` to :func:`evaluate_blend` in a
search (``evaluate_blend(weights=w, data=data, baselines=False, scored_segments=())``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import numpy as np

from lookalike.keys import native

from ..blending.blend import resolve_settings
from ..blending.candidates import Candidates, gather_for_user, rank, score_candidates
from ..blending.core import COMPONENTS, NEW_SHOPPER_EVENTS, BlendSettings
from ..blending.segments import candidate_segments, cold_columns
from ..conf import app_settings
from ..services.profiles import clean_segments, clean_weights
from .comparison import against_best
from .cutoff import catalogue, embedding_matrix, fit_model, shoppers_at, source_at, widen
from .segments import PROTOCOLS, SEGMENT_NAMES, Segment, held_out_events, score_segment
from .shop_events import load_events, split

__all__ = ["BlendEvalData", "evaluate_blend", "prepare_blend_evaluation"]

_SECONDS_PER_DAY = 86400.0
PROTOCOL = (
    "time split: the latest events held out; before the cutoff, the whole history of a "
    "share of the products (cold products) and all but the latest two events of a share of "
    "the shoppers (new shoppers) held out too; shoppers with events on both sides; ALS (and "
    "its cold-start map) fitted on the rest of the earlier events, in memory"
)
#: The single sources every segment reports beside the blend, alone and not re-ranked.
BASELINES = {
    f"{name}_only": BlendSettings(weights={component: 1.0}, diversity="none", name=f"{name}-only")
    for name, component in (
        ("visual", "visual"),
        ("als", "affinity"),
        ("popularity", "popularity"),
        ("covisitation", "covisitation"),
    )
}


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
    segments : dict
        ``{name: Segment}`` for :data:`~.segments.SEGMENT_NAMES`.
    info : dict
        Figures describing the split, for the report.
    """

    product_ids: np.ndarray
    categories: np.ndarray
    embeddings: np.ndarray | None
    segments: dict
    info: dict = field(default_factory=dict)

    @property
    def test(self):
        """Held-out products of the evaluated shoppers (segment ``all``), one row each."""
        return self.segments["all"].test


def _shopper_candidates(source, shopper, exclude, cands, anchor, context, column):
    """``(columns, raw, filled, row segments)`` of one shopper's candidates, scored by the
    shop's code (:func:`score_candidates`, then :func:`cold_columns`)."""
    half_life = app_settings.RECENCY_HALF_LIFE_DAYS
    scored = score_candidates(cands, source, exclude, half_life, anchor=anchor)
    if scored is None:
        empty = np.zeros((0, len(COMPONENTS)))
        return np.zeros(0, dtype=np.int64), empty, empty, []
    raw = scored.raw.copy()
    cold = cold_columns(source, scored, shopper, context)
    columns = np.asarray([column[pid] for pid in scored.ids], dtype=np.int64)
    return columns, raw, scored.raw, candidate_segments(cold, shopper)


def _candidates(source, evaluated, owned, shoppers, column, n, cold_ids):
    """Every evaluated shopper's "For you" candidates, and for those given in ``cold_ids``
    (``{row: None}``) the cold products ranked alone: two lists of
    :func:`_shopper_candidates`' tuples."""
    everything, cold_only = [], {}
    for row in evaluated:
        shopper = shoppers[row]
        exclude = {native(source.product_ids[c]) for c in owned[row]}
        cands, anchor = gather_for_user(source, shopper, exclude, n)
        everything.append(
            _shopper_candidates(source, shopper, exclude, cands, anchor, shopper.history, column)
        )
        if row in cold_ids:
            cold = Candidates()
            cold.add("visual", ((pid, None) for pid in cold_ids[row] if pid not in exclude))
            cold_only[row] = _shopper_candidates(
                source, shopper, exclude, cold, anchor, shopper.history, column
            )
    return everything, cold_only


def _segment(rows, test, ranked):
    columns, raw, filled, segs = zip(*rows, strict=True) if rows else ((), (), (), ())
    return Segment(list(columns), list(raw), list(filled), list(segs), test, ranked)


def prepare_blend_evaluation(
    k=10,
    *,
    test_fraction=0.25,
    cold_share=0.1,
    new_share=0.1,
    include_simulated=True,
    include_experiments=False,
    als_parameters=None,
    candidates=None,
    seed=0,
):
    """Split the events, hold out cold products, fit ALS on the rest of the earlier part
    and build every segment's candidates.

    Parameters
    ----------
    k : int
        Only recorded in ``info``; candidates do not depend on it.
    test_fraction : float
        Share of the events (the latest) held out.
    cold_share, new_share : float
        Shares held out: of the products with events before the cutoff, those whose whole
        history before it is held out (cold: segment ``cold_items``); of the shoppers with
        more than two events before the cutoff (and some after), those whose history before
        it is cut to its latest two events (``new_shoppers``).
    include_simulated, include_experiments : bool
        Whether events of ``simulate_shoppers`` count (yes by default: they are the data),
        and those of ``simulate_experiment`` (no by default: they reward the blend that was
        served, :func:`.shop_events.load_events`).
    als_parameters : dict, optional
        ALS parameters; ``RECOMMENDATIONS_ALS_PARAMETERS`` by default.
    candidates : int, optional
        Candidates per source; ``RECOMMENDATIONS_BLEND_CANDIDATES`` by default.
    seed : int
        Of the ALS fit and of the draw of cold products.

    Returns
    -------
    BlendEvalData

    Raises
    ------
    ValueError
        When there are no events, or no shopper has events on both sides of the cutoff.
    """
    started = time.monotonic()
    shop = catalogue()
    product_ids, categories, _ = shop
    _check(product_ids, cold_share, new_share)
    column = {native(pid): i for i, pid in enumerate(product_ids.tolist())}
    events = load_events(include_simulated, column, include_experiments)
    events, held, cutoff = held_out_events(events, test_fraction, cold_share, new_share, seed)
    weights, cutoff, train, test, users, items = split(events, test_fraction, cutoff)
    evaluated = np.flatnonzero((np.diff(test.indptr) > 0) & (np.diff(train.indptr) > 0))
    if not len(evaluated):
        raise ValueError(
            "No shopper has events both before and after the cutoff: nothing to evaluate."
        )
    params = dict(app_settings.ALS_PARAMETERS if als_parameters is None else als_parameters)
    embeddings = embedding_matrix(product_ids)
    model = fit_model(train, users, items, params, seed, column, embeddings, categories)
    source = source_at(shop, events, weights, cutoff, model, embeddings)
    wide = widen(train, items, column)
    owned = {row: wide.indices[wide.indptr[row] : wide.indptr[row + 1]] for row in evaluated}
    before = events[events.ts < cutoff]
    shoppers = shoppers_at(before, users, evaluated)
    n = app_settings.BLEND_CANDIDATES if candidates is None else candidates
    segments, cold = _segments(source, model, evaluated, owned, shoppers, column, test, items, n)
    info = {
        "protocol": PROTOCOL,
        "cutoff": datetime.fromtimestamp(cutoff, tz=UTC).isoformat(),
        "test_fraction": test_fraction,
        "cold_share": cold_share,
        "new_share": new_share,
        "seed": seed,
        "experiment_events": include_simulated and include_experiments,
        "users": int(len(evaluated)),
        "items": int(len(product_ids)),
        "cold_items": int(cold),
        "held_out_items": int(len(held)),
        "new_shoppers": segments["new_shoppers"].size,
        "train_events": int(len(before.ts)),
        "test_events": int((events.ts >= cutoff).sum()),
        "embedded_items": int(source.has_embedding.sum()) if embeddings is not None else 0,
        "als_parameters": params,
        "segment_protocols": dict(PROTOCOLS),
        "prepare_seconds": round(time.monotonic() - started, 3),
    }
    return BlendEvalData(product_ids, categories, embeddings, segments, info)


def _check(product_ids, cold_share, new_share):
    if not len(product_ids):
        raise ValueError("The catalogue has no active products to evaluate on.")
    for name, share in (("cold_share", cold_share), ("new_share", new_share)):
        if not 0 <= share < 1:
            raise ValueError(f"{name} must be in [0, 1), not {share!r}.")


def _segments(source, model, evaluated, owned, shoppers, column, test, items, n):
    """Every segment's :class:`~.segments.Segment`, and how many products are cold."""
    product_ids = source.product_ids
    cold = np.asarray([native(p) not in model.item_index for p in product_ids.tolist()])
    wide_test = widen(test, items, column)
    cold_test = wide_test.multiply(cold[None, :]).tocsr()
    cold_test.eliminate_zeros()
    cold_rows = [row for row in evaluated if cold_test.indptr[row + 1] > cold_test.indptr[row]]
    cold_ids = [native(p) for p in product_ids[cold].tolist()]
    everything, cold_only = _candidates(
        source, evaluated, owned, shoppers, column, n, dict.fromkeys(cold_rows, cold_ids)
    )
    everyone = _segment(everything, wide_test[evaluated], len(product_ids))
    new = np.asarray([shoppers[row].n_events <= NEW_SHOPPER_EVENTS for row in evaluated])
    segments = {
        "all": everyone,
        "cold_items": _segment([cold_only[r] for r in cold_rows], cold_test[cold_rows], cold.sum()),
        "new_shoppers": everyone.subset(np.flatnonzero(new)),
        "regulars": everyone.subset(np.flatnonzero(~new)),
    }
    return segments, cold.sum()


def _score(data, settings, k, segment="all", blend=True, per_user=None):
    """The metrics of ``settings`` on one segment (see :func:`.segments.score_segment`)."""
    return score_segment(
        data.segments[segment], settings, k, data.categories, data.embeddings, rank, blend, per_user
    )


def _settings(profile_name, weights, diversity, segments):
    """The :class:`BlendSettings` :func:`evaluate_blend` scores."""
    if weights is not None:
        method, param = diversity if diversity is not None else ("none", 0.0)
        settings = BlendSettings(
            weights=clean_weights(weights),
            diversity=method,
            diversity_param=param,
            name=profile_name if isinstance(profile_name, str) else "weights",
        )
    else:
        settings = resolve_settings(profile_name)
        if diversity is not None:
            settings = replace(settings, diversity=diversity[0], diversity_param=diversity[1])
    if segments is not None:
        settings = replace(settings, segments=clean_segments(segments))
    return settings


def evaluate_blend(
    profile_name=None,
    k=10,
    *,
    weights=None,
    diversity=None,
    segments=None,
    data=None,
    baselines=True,
    scored_segments=SEGMENT_NAMES,
    per_user=False,
    **prepare_options,
):
    """Score a blend profile (or explicit weights) against the single sources, per segment.

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
    segments : dict, optional
        ``{segment: {component: weight}}`` overriding the profile's segment weights
        (``{}``: none).
    data : BlendEvalData, optional
        From :func:`prepare_blend_evaluation`, to skip the split and the ALS fit.
    baselines : bool
        Also score the single sources (:data:`BASELINES`) and compare the blend with them.
    scored_segments : sequence of str
        The segments to score (``all`` always is): fewer make a search faster.
    per_user : bool
        Also return ``per_user_ndcg``: per segment, the blend's NDCG of each shopper.
    **prepare_options
        Passed to :func:`prepare_blend_evaluation` when ``data`` is not given.

    Returns
    -------
    dict
        ``profile``, ``weights``, ``segment_weights``, ``diversity``, ``k``, the split's
        figures (``segment_protocols`` among them), ``blend`` and each single source of
        :data:`BASELINES` (``precision_at_k``, ``recall_at_k``, ``map_at_k``, ``ndcg_at_k``,
        ``coverage``, ``diversity``, ``users``) on ``all``, ``segments`` (the same per
        segment), ``blend_against_best`` (:func:`.comparison.against_best` per segment),
        ``seconds`` (and ``per_user_ndcg`` when asked).

    Raises
    ------
    recommendations.services.profiles.UnknownProfile
        For an unknown profile name.
    ValueError
        For bad weights, or too few events to evaluate.
    """
    started = time.monotonic()
    settings = _settings(profile_name, weights, diversity, segments)
    if data is None:
        data = prepare_blend_evaluation(k, **prepare_options)
    unknown = set(scored_segments) - set(SEGMENT_NAMES)
    if unknown:
        raise ValueError(
            f"Unknown segment(s) {', '.join(sorted(unknown))}; the segments are "
            f"{', '.join(SEGMENT_NAMES)}."
        )
    per_segment, comparisons, users = {}, {}, {}
    for name in [s for s in SEGMENT_NAMES if s == "all" or s in scored_segments]:
        ndcg = users[name] = {key: [] for key in ("blend", *BASELINES)}
        figures = {"blend": _score(data, settings, k, name, per_user=ndcg["blend"])}
        if baselines:
            for key, single in BASELINES.items():
                figures[key] = _score(data, single, k, name, False, ndcg[key])
            comparisons[name] = against_best({key: v[0] for key, v in ndcg.items()}, seed=0)
        per_segment[name] = figures
    result = {
        "profile": settings.name,
        "weights": {c: float(settings.weights.get(c, 0.0)) for c in COMPONENTS},
        "segment_weights": {
            segment: {c: float(w) for c, w in settings.segment_weights(segment).items()}
            for segment in settings.segments
        },
        "diversity": {"method": settings.diversity, "parameter": settings.diversity_param},
        "k": k,
        **data.info,
        **per_segment["all"],
        "segments": per_segment,
        "blend_against_best": comparisons,
    }
    if per_user:
        result["per_user_ndcg"] = {name: ndcg["blend"][0].tolist() for name, ndcg in users.items()}
    result["seconds"] = round(time.monotonic() - started, 3)
    return result
