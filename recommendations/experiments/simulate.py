r"""Simulated shoppers against a live experiment, so that a demo has a result to show.

The shoppers are those of :func:`recommendations.offline.simulation.simulate_shoppers`
(read back with their true tastes by ``load_ground_truth``). Each one is assigned an arm
exactly as a real anonymous session is (by their session key), visits the shop
``visits`` times, and on each visit is served the widgets the way the shop serves them
(:func:`~recommendations.blending.blend.recommend_for_user` and, if asked,
:func:`~recommendations.blending.blend.blend_similar` for a product they look at, drawn
from their preferences), under their arm's profile. The strips are recorded as
impressions, and the shopper's *true* preference decides what they click:

Click models
------------
Both scan the strip from the top and discount position :math:`i` as NDCG does,
:math:`e_i = 1 / \log_2(i + 2)`.

``"intent"`` (the default)
    The shopper arrives wanting :math:`1 + Poisson(12)` products drawn from their own
    behaviour, :math:`(1 - \epsilon_s) P_s + \epsilon_s / n`, as the simulation's
    generative model would view them over the coming days: 13 on average, as many as the
    offline evaluation holds out per demo shopper (its 25% latest events: 13,568 for 998
    shoppers). They look at position :math:`i` with
    probability :math:`e_i` and click the first product they look at that they wanted.
    This asks live what the offline evaluation asks of held-out events: are the products
    the shopper goes on to want near the top of the strip?
``"appeal"``
    The shopper is drawn to product ``j`` in proportion to their true preference
    :math:`r_j = n\,P_s(j)` (1 for a product of average appeal to them) and clicks at most
    one product: product ``i`` with probability :math:`e_i r_i / (W + \sum_k e_k r_k)`,
    none with probability :math:`W / (W + \sum_k e_k r_k)`, where :math:`W`
    (:data:`OUTSIDE_OPTION`) is the pull of everything else on the page. It rewards a
    strip for the total appeal of its top positions, wanted today or not.

A clicked product goes to the cart and is bought with the probabilities of the
simulation's own model.

Clicks, carts and purchases are stored as real events (``simulated=True``, the widget's
source) and attributed through :mod:`.recording`, like a real shopper's.
"""

from __future__ import annotations

import numpy as np
from django.utils import timezone

from ..blending.blend import blend_similar, recommend_for_user
from ..models import Event, Experiment, Impression
from ..offline.world import load_ground_truth
from ..services.shoppers import forget_shopper_events
from .recording import attribute_event, record_impressions
from .services import ExperimentError
from .widgets import assign

__all__ = ["CLICK_MODELS", "OUTSIDE_OPTION", "simulate_experiment"]

#: The pull of not clicking, in units of a product of average appeal to the shopper.
OUTSIDE_OPTION = 300.0
SOURCES = {"similar-items": "similar-widget", "for-you": "for-you"}
CLICK_MODELS = ("intent", "appeal")
#: Mean number of products a shopper wants, less one (the "intent" model).
INTENT = 12.0


def _event(key, product_id, kind, source=""):
    return Event.objects.create(
        session_key=key,
        product_id=product_id,
        kind=kind,
        source=source,
        created_at=timezone.now(),
        simulated=True,
    )


class _Visitor:
    """One simulated shopper's tastes, in the world's product order."""

    def __init__(self, shopper, world, index, click_model):
        self.key = shopper.session_key
        self.product_ids = world.product_ids
        self.click_model = click_model
        preference = shopper.preference(world)
        self.relative = preference * world.n_products
        views = (1.0 - shopper.noise) * preference + shopper.noise / world.n_products
        self.views = views / views.sum()
        liked = np.zeros(world.n_clusters, dtype=bool)
        liked[list(shopper.tastes)] = True
        over = np.log(np.maximum(world.prices, 0.01) / shopper.budget)
        cart = 0.15 * np.exp(-shopper.price_sensitivity * np.maximum(over, 0.0))
        self.cart = cart * np.where(liked[world.clusters], 1.0, 0.2)
        self.index = index

    def choose(self, product_ids, rng):
        """The position clicked, or ``None`` (module docstring)."""
        if self.click_model == "intent":
            return self._intent(product_ids, rng)
        return self._appeal(product_ids, rng)

    def _intent(self, product_ids, rng):
        wanted = rng.choice(len(self.views), size=1 + rng.poisson(INTENT), p=self.views)
        wanted = {int(pid) for pid in self.product_ids[wanted]}
        for i, pid in enumerate(product_ids):
            if pid in wanted and rng.random() < 1.0 / np.log2(i + 2):
                return i
        return None

    def _appeal(self, product_ids, rng):
        known = [self.index.get(pid) for pid in product_ids]
        pull = np.array(
            [
                (self.relative[j] if j is not None else 0.0) / np.log2(i + 2)
                for i, j in enumerate(known)
            ]
        )
        weights = np.append(pull, OUTSIDE_OPTION)
        pick = rng.choice(len(weights), p=weights / weights.sum())
        return None if pick == len(pull) else int(pick)


def _serve(visitor, arm, widget, product_id):
    profile = arm.profile.name
    if widget == "similar-items":
        recs = blend_similar(product_id, session_key=visitor.key, profile=profile)
    else:
        recs = recommend_for_user(session_key=visitor.key, profile=profile)
    return [rec.product.pk for rec in recs]


def _visit(visitor, arm, world, rng, counts, widgets):
    looked_at = int(world.product_ids[rng.choice(len(visitor.views), p=visitor.views)])
    for widget in widgets:
        source = SOURCES[widget]
        shown = _serve(visitor, arm, widget, looked_at)
        if not shown:
            continue
        rec_id = record_impressions(arm, widget, shown, session_key=visitor.key, simulated=True)
        counts["strips"] += 1
        position = visitor.choose(shown, rng)
        if position is None:
            continue
        product_id = shown[position]
        click = _event(visitor.key, product_id, Event.Kind.SIMILAR_CLICK, source)
        counts["clicks"] += attribute_event(click, rec_id) is not None
        j = visitor.index.get(product_id)
        if j is not None and rng.random() < visitor.cart[j]:
            attribute_event(_event(visitor.key, product_id, Event.Kind.CART))
            if rng.random() < 0.5:
                counts["purchases"] += (
                    attribute_event(_event(visitor.key, product_id, Event.Kind.PURCHASE))
                    is not None
                )
        forget_shopper_events(None, visitor.key)


def simulate_experiment(
    experiment,
    shoppers=500,
    *,
    seed=0,
    visits=2,
    widgets=("for-you",),
    click_model="intent",
    progress=None,
):
    """Run ``shoppers`` simulated shoppers of ``seed`` against the running ``experiment``.

    ``click_model`` is ``"intent"`` or ``"appeal"`` (module docstring). ``widgets`` are
    served on each visit: ``"for-you"`` (the strip the offline evaluation
    scores, so the default, to compare the two) and/or ``"similar-items"``.

    Returns
    -------
    dict
        ``shoppers``, ``strips``, ``clicks``, ``purchases`` and ``per_arm`` (shoppers
        assigned to each arm).

    Raises
    ------
    ExperimentError
        If the experiment is not running, or ``seed`` has no simulated shoppers here.
    """
    if not Experiment.objects.filter(pk=experiment.pk, status=Experiment.Status.RUNNING).exists():
        raise ExperimentError(f"The experiment {experiment.name!r} is not running.")
    if shoppers < 1 or visits < 1:
        raise ExperimentError("shoppers and visits must be at least 1.")
    if click_model not in CLICK_MODELS:
        raise ExperimentError(
            f"Unknown click model {click_model!r}; choose from {', '.join(CLICK_MODELS)}."
        )
    unknown = sorted(set(widgets) - set(SOURCES)) or ([] if widgets else ["(none)"])
    if unknown:
        raise ExperimentError(
            f"Unknown widget(s) {', '.join(unknown)}; choose from {', '.join(SOURCES)}."
        )
    try:
        truth = load_ground_truth(seed)
    except FileNotFoundError:
        raise ExperimentError(
            f"No simulated shoppers of seed {seed} here: run simulate_shoppers first."
        ) from None
    arms = list(experiment.arms.select_related("experiment", "profile").order_by("position"))
    world = truth.world
    index = {int(pid): i for i, pid in enumerate(world.product_ids.tolist())}
    # Seeded, and different for every run against the same experiment (a second run adds
    # fresh draws instead of repeating the first one's).
    done = Impression.objects.filter(experiment=experiment).count()
    rng = np.random.default_rng([seed, 17, experiment.pk, done])
    picked = rng.choice(len(truth.shoppers), size=min(shoppers, len(truth.shoppers)), replace=False)
    counts = {"shoppers": len(picked), "strips": 0, "clicks": 0, "purchases": 0}
    per_arm = dict.fromkeys((arm.name for arm in arms), 0)
    for s in picked:
        visitor = _Visitor(truth.shoppers[int(s)], world, index, click_model)
        arm = assign(arms, None, visitor.key)
        per_arm[arm.name] += 1
        for _ in range(visits):
            _visit(visitor, arm, world, rng, counts, widgets)
        if progress is not None:
            progress(1)
    return {**counts, "per_arm": per_arm}
