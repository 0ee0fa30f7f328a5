"""The blend's vocabulary is written once, and its offline evaluation runs the shop's code.

The candidate generation and scoring of :mod:`recommendations.blending.candidates` are fed
by a live source (the shop) or an as-of source (the evaluation). On the same data, with
the same model, the two must propose the same candidates with the same raw scores.
"""

from dataclasses import replace
from importlib import import_module

import numpy as np
import pytest
from django.utils import timezone

from recommendations.blending.asof import capped_popularity
from recommendations.blending.candidates import Shopper, gather_for_user, score_candidates
from recommendations.blending.core import (
    BUILTIN_SETTINGS,
    COMPONENTS,
    DEFAULT_DIVERSITY_PARAMS,
    DEFAULT_WEIGHTS,
    DIVERSITY_METHODS,
    RULES,
    BlendSettings,
)
from recommendations.blending.live import LiveSource, live_shopper
from recommendations.models import BlendProfile
from recommendations.offline import cutoff as cutoff_shop
from recommendations.offline.shop_events import histories, load_events
from recommendations.services import serving
from recommendations.services.matrix import event_weights
from recommendations.services.profiles import get_profile
from tests.recommendations.blend_support import (  # noqa: F401 (fixture)
    blend_environment,
    train_model,
    two_taste_catalogue,
)

MIGRATION_0003 = import_module("recommendations.migrations.0003_default_blend_profile").DEFAULT
MIGRATION_0009 = import_module("recommendations.migrations.0009_default_profile_segments")


def test_the_builtin_fallback_is_the_migrated_default_profile():
    # Migration 0003 created it; 0009 tuned its weights and gave it segment weights; 0011
    # added co-visitation, weighing 0.
    migrated = {**MIGRATION_0009.NEW, "covisitation_weight": 0.0}
    assert BUILTIN_SETTINGS.weights == {c: migrated[f"{c}_weight"] for c in COMPONENTS}
    assert BUILTIN_SETTINGS.segments == MIGRATION_0009.SEGMENTS
    assert BUILTIN_SETTINGS.diversity_param == MIGRATION_0009.NEW["diversity_param"]
    assert BUILTIN_SETTINGS.diversity == MIGRATION_0003["diversity"]
    assert {rule: getattr(BUILTIN_SETTINGS, rule) for rule in RULES} == {
        rule: MIGRATION_0003[rule] for rule in RULES
    }


@pytest.mark.django_db
def test_the_migrated_default_profile_blends_as_the_fallback_does():
    stored = BlendSettings.from_profile(get_profile(None))
    assert stored == replace(BUILTIN_SETTINGS, name=stored.name)


def test_the_model_speaks_the_vocabulary():
    assert BlendProfile.WEIGHT_FIELDS == tuple(f"{c}_weight" for c in COMPONENTS)
    assert tuple(BlendProfile.Diversity.values) == (
        DIVERSITY_METHODS[0],
        DIVERSITY_METHODS[1],
        DIVERSITY_METHODS[2],
    )
    fields = {f.name: f for f in BlendProfile._meta.get_fields()}
    assert {c: fields[f"{c}_weight"].default for c in COMPONENTS} == DEFAULT_WEIGHTS
    assert fields["diversity_param"].default == DEFAULT_DIVERSITY_PARAMS["mmr"]
    assert set(RULES) <= set(fields)


def test_capped_popularity_caps_each_shoppers_share_of_a_product():
    who = np.array(["s:a", "s:a", "s:a", "s:b"])
    columns = np.array([0, 0, 1, 0])
    weights = np.array([10.0, 10.0, 1.0, 4.0])
    np.testing.assert_allclose(capped_popularity(who, columns, weights, 3, cap=16), [20, 1, 0])
    np.testing.assert_allclose(capped_popularity(who, columns, weights, 3), [24, 1, 0])


@pytest.mark.django_db
def test_live_and_as_of_sources_propose_the_same_candidates(
    product_factory, category_factory, settings
):
    """Today's data through both sources: the as-of source at a cutoff after every event,
    with the shop's active model, proposes what the shop proposes, scored the same."""
    settings.VISUALSEARCH_EXACT_SEARCH_MAX_ROWS = 10**6  # exact neighbours, as offline
    data = two_taste_catalogue(product_factory, category_factory)
    train_model()
    model = serving.get_active_model()
    catalogue = cutoff_shop.catalogue()
    column = {pid: i for i, pid in enumerate(catalogue[0].tolist())}
    events = load_events(True, column)
    cutoff = timezone.now().timestamp() + 1.0
    weights = event_weights(events.kind, half_life_days=None)
    embeddings = cutoff_shop.embedding_matrix(catalogue[0])
    as_of = cutoff_shop.source_at(catalogue, events, weights, cutoff, model, embeddings)
    offline_histories = histories(events, 5)
    live = LiveSource(BUILTIN_SETTINGS)
    for key in data["shoppers"]["a"][:3] + data["shoppers"]["b"][:3]:
        shopper = live_shopper(None, key, BUILTIN_SETTINGS)
        user, history = offline_histories[f"s:{key}"]
        assert history == shopper.history and user == (None, key)
        exclude = set(shopper.history)
        live_cands, live_anchor = gather_for_user(live, shopper, exclude, 10)
        offline_shopper = Shopper(key=user, history=history)
        offline_cands, offline_anchor = gather_for_user(as_of, offline_shopper, exclude, 10)
        assert list(live_cands.origin.items()) == list(offline_cands.origin.items())
        np.testing.assert_allclose(live_anchor, offline_anchor)
        live_scored = score_candidates(live_cands, live, exclude, 30, anchor=live_anchor)
        offline_scored = score_candidates(offline_cands, as_of, exclude, 30, anchor=offline_anchor)
        assert live_scored.ids == offline_scored.ids
        assert live_scored.categories == list(offline_scored.categories)
        np.testing.assert_allclose(live_scored.raw, offline_scored.raw, rtol=1e-5)
