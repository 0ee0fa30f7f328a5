"""Segment weights of blend profiles, the cold-start map and the per-segment evaluation."""

import numpy as np
import pytest
from django.core.exceptions import ValidationError

from recommendations.blending.candidates import Shopper
from recommendations.blending.coldstart import ColdStartMap, fit_cold_start
from recommendations.blending.core import (
    COMPONENTS,
    PREDICTED_REASONS,
    REASONS,
    BlendSettings,
    combine,
    reasons,
)
from recommendations.blending.segment_weights import clean_segment_weights
from recommendations.blending.segments import candidate_segments, event_count, is_new_shopper
from recommendations.models import BlendProfile
from recommendations.services.profiles import InvalidProfile, publish_profile
from tests.recommendations.blend_support import (  # noqa: F401 (fixture)
    blend_environment,
    two_taste_catalogue,
)


def test_segment_weights_replace_the_profiles_component_by_component():
    settings = BlendSettings(
        weights={"visual": 1.0, "affinity": 3.0},
        segments={"cold_item": {"visual": 3.0, "affinity": 0.0}, "new_shopper": {"popularity": 4}},
    )
    assert settings.segment_weights(None) == {"visual": 1.0, "affinity": 3.0}
    assert settings.segment_weights("cold_item") == {"visual": 3.0, "affinity": 0.0}
    new = settings.weight_vector("new_shopper")
    assert new[COMPONENTS.index("popularity")] == pytest.approx(0.5)
    assert new.sum() == pytest.approx(1.0)
    rows = settings.weight_rows(["cold_item", None, "new_shopper"])
    assert rows.shape == (3, len(COMPONENTS))
    assert rows[0, COMPONENTS.index("visual")] == pytest.approx(1.0)
    assert rows[1, COMPONENTS.index("affinity")] == pytest.approx(0.75)


def test_combine_takes_one_weight_vector_per_candidate():
    rng = np.random.default_rng(0)
    raw = rng.random((4, len(COMPONENTS)))
    settings = BlendSettings(weights={"affinity": 1.0}, segments={"cold_item": {"visual": 1.0}})
    segments = ["cold_item", None, None, "cold_item"]
    scores, contributions = combine(raw, settings.weight_rows(segments))
    cold_scores, _ = combine(raw, settings.weight_vector("cold_item"))
    plain_scores, _ = combine(raw, settings.weight_vector())
    expected = np.where(np.asarray(segments) == "cold_item", cold_scores, plain_scores)
    np.testing.assert_allclose(scores, expected)
    np.testing.assert_allclose(contributions.sum(axis=1), scores)


@pytest.mark.parametrize(
    ("segments", "message"),
    [
        ({"warm_item": {"visual": 1}}, "Unknown segment"),
        ({"cold_item": {"looks": 1}}, "must map some of"),
        ({"cold_item": {}}, "must map some of"),
        ({"cold_item": {"visual": -1}}, "from 0 to 1000"),
        ({"cold_item": {"visual": 1e308}}, "from 0 to 1000"),  # would sum to infinity
        ({"cold_item": {"visual": "a lot"}}, "must be a number"),
        ({"new_shopper": {"affinity": 0.0}}, "All weights are zero"),
        (["cold_item"], "JSON object"),
    ],
)
def test_bad_segment_weights_are_refused_with_a_message(segments, message):
    with pytest.raises(ValueError, match=message):
        clean_segment_weights(segments, {"affinity": 1.0})


def test_new_shoppers_and_cold_candidates_pick_their_segments():
    assert event_count(Shopper()) == 0 and is_new_shopper(Shopper())
    assert not is_new_shopper(Shopper(key=(None, "s"), n_events=3))
    assert is_new_shopper(Shopper(key=(None, "s"), n_events=2))
    regular = Shopper(key=(1, None), n_events=10)
    assert candidate_segments([True, False], regular) == ["cold_item", None]
    newcomer = Shopper(key=(1, None), n_events=1)
    assert candidate_segments([True, False], newcomer) == ["cold_item", "new_shopper"]
    # "Similar items" names no shopper: only cold candidates change weights there.
    assert candidate_segments([True, False]) == ["cold_item", None]


def test_the_cold_start_map_learns_factors_from_embeddings_and_categories():
    rng = np.random.default_rng(3)
    n, dim, factors = 400, 16, 4
    embeddings = rng.normal(size=(n, dim))
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    categories = rng.integers(0, 3, n)
    truth = rng.normal(size=(dim, factors))
    shift = rng.normal(size=(3, factors))
    item_factors = embeddings @ truth + shift[categories] + rng.normal(0, 0.01, (n, factors))
    mapping = fit_cold_start(item_factors[:300], embeddings[:300], categories[:300])
    predicted = mapping.factors(embeddings[300:], categories[300:])
    error = np.abs(predicted - item_factors[300:]).mean()
    assert error < 0.1 * np.abs(item_factors[300:]).mean()
    stored = ColdStartMap.from_arrays(mapping.to_arrays())
    np.testing.assert_allclose(
        stored.factors(embeddings[300:], categories[300:]), predicted, rtol=1e-4, atol=1e-4
    )
    assert fit_cold_start(item_factors[:1], embeddings[:1], categories[:1]) is None


def test_a_shop_with_fewer_products_than_features_fits_the_same_map_from_its_rows(monkeypatch):
    """Fewer products than features: the ridge path is read from the products' rows (an
    SVD), and gives the map the d x d decomposition gives, penalty and all."""
    from recommendations.blending import coldstart

    rng = np.random.default_rng(5)
    n, dim, factors = 40, 120, 6
    embeddings = rng.normal(size=(n, dim))
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    categories = rng.integers(0, 4, n)
    item_factors = embeddings @ rng.normal(size=(dim, factors)) + rng.normal(0, 0.1, (n, factors))
    rows = fit_cold_start(item_factors, embeddings, categories)
    x = rng.normal(size=(n, dim))
    assert len(coldstart._spectrum(x)[0]) == n and len(coldstart._spectrum(x.T)[0]) == n
    monkeypatch.setattr(coldstart, "_spectrum", coldstart._gram_spectrum)
    gram = fit_cold_start(item_factors, embeddings, categories)
    assert rows.category_scale == gram.category_scale
    np.testing.assert_allclose(rows.coef, gram.coef, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(rows.intercept, gram.intercept, rtol=1e-6, atol=1e-9)


@pytest.mark.django_db
def test_profiles_validate_and_publish_segments():
    profile = BlendProfile(name="segmented", affinity_weight=1.0, segments={"cold": {"visual": 1}})
    with pytest.raises(ValidationError) as caught:
        profile.full_clean()
    assert "segments" in caught.value.message_dict
    published = publish_profile(
        "seg", {"popularity": 1.0}, segments={"cold_item": {"recency": 1}}, diversity="none"
    )
    assert BlendProfile.objects.get(pk=published.pk).segments == {"cold_item": {"recency": 1.0}}
    with pytest.raises(InvalidProfile, match="Unknown segment"):
        publish_profile("seg", {"popularity": 1.0}, segments={"new_user": {"recency": 1}})
    # A source a segment uses must exist, as for the profile's own weights.
    with pytest.raises(InvalidProfile, match="no trained recommender model"):
        publish_profile("seg", {"popularity": 1.0}, segments={"new_shopper": {"affinity": 1}})


@pytest.mark.django_db
def test_training_stores_the_map_and_new_products_get_collaborative_scores(
    product_factory, category_factory
):
    from recommendations.blending.blend import recommend_for_user
    from recommendations.blending.coldstart import cold_start_of
    from recommendations.services import serving
    from tests.recommendations.blend_support import DIM, embed, train_model

    data = two_taste_catalogue(product_factory, category_factory)
    train_model()
    model = serving.get_active_model()
    assert cold_start_of(model) is not None
    # A product added after training, among group B's looks and in its category.
    newcomer = product_factory(category=data["b"][0].category, title="New B")
    v = np.full(DIM, 0.05)
    v[1] = 1.0
    embed(newcomer, v)
    assert newcomer.pk not in model.item_index
    shopper = data["shoppers"]["b"][0]
    shown = {r.product.pk: r for r in recommend_for_user(session_key=shopper, k=16)}
    assert newcomer.pk in shown
    # Its ALS components come from its predicted factors: ALS alone has none for it.
    assert shown[newcomer.pk].components["affinity"] > 0
    assert shown[newcomer.pk].components["collaborative"] > 0


@pytest.mark.django_db
def test_a_new_product_without_a_photo_gets_no_predicted_taste(product_factory, category_factory):
    """Predicted from its category alone, a product without a vector scored like the
    category's average shopper taste and topped the strips above real neighbours."""
    from recommendations.blending.blend import recommend_for_user
    from recommendations.services import serving
    from tests.recommendations.blend_support import train_model

    data = two_taste_catalogue(product_factory, category_factory)
    train_model()
    faceless = product_factory(category=data["b"][0].category, title="No photo yet")
    assert faceless.pk not in serving.get_active_model().item_index
    shopper = data["shoppers"]["b"][0]
    shown = {r.product.pk: r for r in recommend_for_user(session_key=shopper, k=50)}
    assert faceless.pk in shown  # proposed as the newest product
    assert shown[faceless.pk].components["affinity"] == 0
    assert shown[faceless.pk].components["collaborative"] == 0
    assert shown[faceless.pk].reason != REASONS["collaborative"]


def test_a_cold_product_says_its_collaborative_score_is_predicted():
    contributions = np.zeros((2, len(COMPONENTS)))
    contributions[:, COMPONENTS.index("collaborative")] = 0.5
    assert reasons(contributions, ["visual", "visual"], cold=[False, True]) == [
        REASONS["collaborative"],
        PREDICTED_REASONS["collaborative"],
    ]
    contributions[1, COMPONENTS.index("visual")] = 0.9  # a cold product's looks win
    assert (
        reasons(contributions, ["visual", "visual"], cold=[False, True])[1] == (REASONS["visual"])
    )
