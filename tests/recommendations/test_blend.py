"""The blend: normalisation, weighting, reasons, rules, diversity and cold start."""

import io
import json
from datetime import timedelta

import numpy as np
import pytest
from django.core.management import call_command
from django.utils import timezone

from recommendations.blending import blend
from recommendations.blending.blend import blend_similar, recommend_for_user
from recommendations.blending.core import (
    COMPONENTS,
    BlendSettings,
    combine,
    diversify,
    normalise,
    reasons,
)
from recommendations.models import BlendProfile
from recommendations.services.profiles import UnknownProfile
from tests.recommendations.blend_support import (  # noqa: F401 (fixture)
    blend_environment,
    embed,
    event,
    train_model,
    two_taste_catalogue,
)

VISUAL_ONLY = BlendSettings(weights={"visual": 1.0}, diversity="none")


def ids(recommendations):
    return [r.product.pk for r in recommendations]


# -- the pure core ---------------------------------------------------------------------


def test_normalise_is_min_max_with_unscored_at_the_bottom():
    np.testing.assert_allclose(normalise([1.0, 3.0, np.nan, 5.0]), [0.0, 0.5, 0.0, 1.0])
    # Equal scores only tell scored from unscored candidates...
    np.testing.assert_allclose(normalise([2.0, 2.0, np.nan]), [1.0, 1.0, 0.0])
    # ...and nothing when every candidate has the same score.
    np.testing.assert_allclose(normalise([2.0, 2.0, 2.0]), [0.0, 0.0, 0.0])
    np.testing.assert_allclose(normalise([np.nan, np.nan]), [0.0, 0.0])
    # Scale does not matter: cosine similarities and event counts compare alike.
    np.testing.assert_allclose(normalise([0.91, 0.93, 0.95]), normalise([10, 20, 30]))


def test_combine_scales_weights_and_contributions_sum_to_the_score():
    raw = np.array(
        [
            [0.9, np.nan, np.nan, 10.0, 1.0, 4.0],
            [0.5, 3.0, np.nan, 0.0, 0.5, np.nan],
            [0.8, 1.0, np.nan, np.nan, 0.25, 1.0],
        ]
    )
    scores, contributions = combine(raw, [2.0, 1.0, 1.0, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(contributions.sum(axis=1), scores)
    # visual: 0.9 -> 1, 0.5 -> 0, 0.8 -> 0.75, weight 0.5; collaborative: 3 -> 1, 1 -> 0.
    np.testing.assert_allclose(contributions[:, 0], [0.5, 0.0, 0.375])
    np.testing.assert_allclose(contributions[:, 1], [0.0, 0.25, 0.0])
    np.testing.assert_allclose(contributions[:, 3:], 0.0)
    assert scores.max() <= 1.0
    assert list(np.argsort(-scores)) == [0, 2, 1]


def test_reasons_follow_the_largest_contribution_else_the_source():
    contributions = np.array(
        [
            [0.4, 0.1, 0.0, 0.0, 0.0, 0.0],
            [0.1, 0.3, 0.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 0.2, 0.1, 0.0, 0.1],
            [0.0, 0.0, 0.0, 0.2, 0.0, 0.0],
            [0.0, 0.0, 0.0, 0.0, 0.05, 0.0],
            [0.0, 0.0, 0.1, 0.0, 0.0, 0.3],
            [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        ]
    )
    origins = ["visual", "visual", "popularity", "popularity", "recency", "affinity", "popularity"]
    assert reasons(contributions, origins) == [
        "Looks similar",
        "Shoppers who viewed this also viewed",
        "Picked for you",
        "Popular now",
        "New in",
        "Often viewed together",
        "Popular now",  # nothing contributed: the reason of the source that proposed it
    ]
    assert len(COMPONENTS) == contributions.shape[1]


def test_category_cap_limits_each_category_and_relaxes_only_to_fill_k():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    cats = ["a", "a", "a", "b", "a", "c"]
    assert diversify(scores, 4, "category_cap", 2, categories=cats) == [0, 1, 3, 5]
    # Only 2 products fit under the cap; the other slots take the best ones left over.
    assert diversify(scores[:5], 4, "category_cap", 1, categories=cats[:5]) == [0, 3, 1, 2]
    assert diversify(scores, 6, "category_cap", 1, categories=cats) == [0, 3, 5, 1, 2, 4]


def test_mmr_skips_near_duplicates_and_lambda_one_keeps_the_ranking():
    scores = np.array([1.0, 0.95, 0.6, 0.5])
    emb = np.array([[1.0, 0.0], [0.999, 0.045], [0.0, 1.0], [0.7071, 0.7071]])
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    cats = ["x"] * 4
    assert diversify(scores, 3, "mmr", 0.5, categories=cats, embeddings=emb)[:2] == [0, 2]
    assert diversify(scores, 3, "mmr", 1.0, categories=cats, embeddings=emb) == [0, 1, 2]
    assert diversify(scores, 3, "none") == [0, 1, 2]
    # Without embeddings MMR falls back to "same category is similar".
    assert diversify(scores, 2, "mmr", 0.3, categories=["x", "x", "y", "x"]) == [0, 2]


# -- the blend on the database -------------------------------------------------------------


@pytest.fixture
def lookalikes(product_factory, category_factory):
    """An anchor and products ever less like it, in one category, all embedded."""
    cat = category_factory(name="Shirts", slug="shirts")
    anchor = product_factory(category=cat, title="Anchor")
    embed(anchor, [1.0, 0.0, 0.0, 0.0])
    others = []
    for i in range(6):
        p = product_factory(category=cat, title=f"Lookalike {i}")
        embed(p, [1.0, 0.15 * (i + 1), 0.0, 0.0])
        others.append(p)
    return anchor, others


@pytest.mark.django_db
def test_similar_without_a_model_ranks_by_looks_and_says_so(lookalikes):
    anchor, others = lookalikes
    recs = blend_similar(anchor, profile=VISUAL_ONLY, k=4)
    assert ids(recs) == [p.pk for p in others[:4]]
    assert {r.reason for r in recs} == {"Looks similar"}
    assert recs[0].score == pytest.approx(1.0)
    assert recs[0].components["visual"] == pytest.approx(1.0)
    assert anchor.pk not in ids(blend_similar(anchor, k=20))


@pytest.mark.django_db
def test_rules_drop_out_of_stock_inactive_and_purchased(lookalikes):
    anchor, others = lookalikes
    others[0].stock = 0
    others[0].save()
    others[1].is_active = False
    others[1].save()
    event(others[2], "purchase", session_key="buyer-session")
    recs = ids(blend_similar(anchor, session_key="buyer-session", profile=VISUAL_ONLY, k=10))
    assert recs == [p.pk for p in others[3:]]
    # A profile that allows out-of-stock products and re-buying shows them (never inactive).
    lenient = BlendSettings(
        weights={"visual": 1.0},
        diversity="none",
        in_stock_only=False,
        exclude_purchased=False,
        exclude_current=False,
    )
    recs = ids(blend_similar(anchor, session_key="buyer-session", profile=lenient, k=10))
    assert others[0].pk in recs and others[2].pk in recs and anchor.pk in recs
    assert others[1].pk not in recs


@pytest.mark.django_db
def test_category_cap_profile_diversifies_the_strip(product_factory, category_factory):
    anchor = product_factory()
    embed(anchor, [1.0, 0.0, 0.0, 0.0])
    shirts = category_factory(name="Shirts", slug="shirts")
    socks = category_factory(name="Socks", slug="socks")
    for i in range(5):
        embed(product_factory(category=shirts), [1.0, 0.05 * (i + 1), 0.0, 0.0])
    for i in range(3):
        embed(product_factory(category=socks), [1.0, 0.0, 0.5 + 0.1 * i, 0.0])
    capped = BlendSettings(weights={"visual": 1.0}, diversity="category_cap", diversity_param=2)
    recs = blend_similar(anchor, profile=capped, k=4)
    categories = [r.product.category_id for r in recs]
    assert categories.count(shirts.pk) == 2 and categories.count(socks.pk) == 2
    plain = blend_similar(anchor, profile=VISUAL_ONLY, k=4)
    assert [r.product.category_id for r in plain].count(shirts.pk) == 4


@pytest.mark.django_db
def test_no_model_no_embeddings_no_events_gives_newest(product_factory):
    products = product_factory.create_batch(5)
    recs = blend_similar(products[0], k=3)
    assert ids(recs) == [p.pk for p in reversed(products[2:])]
    assert {r.reason for r in recs} == {"New in"}
    assert len(recommend_for_user(k=10)) == 5


@pytest.mark.django_db
def test_no_model_with_events_gives_popular(product_factory):
    products = product_factory.create_batch(6)
    for _ in range(3):
        event(products[1], "view", session_key="someone")
    event(products[2], "cart", session_key="someone")
    recs = recommend_for_user(profile=BlendSettings(weights={"popularity": 1.0}), k=3)
    assert ids(recs)[:2] == [products[2].pk, products[1].pk]  # a cart (4) beats 3 views
    assert recs[0].reason == "Popular now"


@pytest.mark.django_db
def test_unknown_profile_name_raises(product):
    with pytest.raises(UnknownProfile, match="summer"):
        blend_similar(product, profile="summer")


@pytest.mark.django_db
def test_profile_by_name_and_the_default_profile(lookalikes):
    anchor, others = lookalikes
    BlendProfile.objects.create(
        name="newest",
        recency_weight=1.0,
        visual_weight=0,
        collaborative_weight=0,
        affinity_weight=0,
        popularity_weight=0,
        diversity="none",
    )
    for i, p in enumerate(others):
        type(p).objects.filter(pk=p.pk).update(created_at=timezone.now() - timedelta(days=3 * i))
    recs = blend_similar(anchor, profile="newest", k=3)
    assert ids(recs) == [p.pk for p in others[:3]]
    assert {r.reason for r in recs} == {"New in"}
    default = blend.resolve_settings(None)
    assert default.name == BlendProfile.objects.get(is_default=True).name


@pytest.mark.django_db
def test_collaborative_and_cold_start_new_product(product_factory, category_factory):
    data = two_taste_catalogue(product_factory, category_factory)
    train_model()
    collaborative = BlendSettings(weights={"collaborative": 1.0}, diversity="none")
    recs = blend_similar(data["a"][0], profile=collaborative, k=5)
    group_a = {p.pk for p in data["a"]}
    assert ids(recs) and set(ids(recs)) <= group_a
    assert recs[0].reason == "Shoppers who viewed this also viewed"
    # A product nobody has seen yet: the model does not know it; its looks carry it.
    newcomer = product_factory(category=data["b"][0].category, title="Newcomer")
    embed(newcomer, [0.05, 1.0, 0.05, 0.05])
    recs = blend_similar(newcomer, k=5)
    assert set(ids(recs)) <= {p.pk for p in data["b"]}
    assert recs[0].reason == "Looks similar"


@pytest.mark.django_db
def test_anonymous_session_is_personalised_after_a_few_clicks(
    client, product_factory, category_factory
):
    data = two_taste_catalogue(product_factory, category_factory)
    train_model()
    # The crowd prefers group A: a cold shopper sees mostly A.
    for p in data["a"][:3]:
        for _ in range(6):
            event(p, "cart", session_key="crowd")
    cold = ids(recommend_for_user(session_key="new-visitor", k=6))
    group_b = {p.pk for p in data["b"]}
    assert len(set(cold) & group_b) <= 3
    for p in data["b"][:3]:
        event(p, "view", session_key="new-visitor")
    warm = recommend_for_user(session_key="new-visitor", k=6)
    assert ids(warm) != cold
    # The five B products not yet seen come first; the clicked ones are left out.
    assert set(ids(warm)[:5]) == group_b - {p.pk for p in data["b"][:3]}
    assert {r.reason for r in warm[:5]} <= {
        "Looks similar",
        "Picked for you",
        "Shoppers who viewed this also viewed",
    }


BASELINE_NAMES = ("visual_only", "als_only", "popularity_only", "covisitation_only")


def test_a_paired_difference_comes_with_its_interval():
    from recommendations.offline.comparison import against_best, paired_interval

    rng = np.random.default_rng(0)
    base = rng.random(400)
    # The same lists: no difference, an interval of nothing.
    assert paired_interval(base, base) == (0.0, 0.0, 0.0)
    # Better for every shopper by 0.05: no doubt about it.
    diff, low, high = paired_interval(base + 0.05, base)
    assert diff == pytest.approx(0.05) and low == pytest.approx(0.05) == high
    # Noise only: the interval holds 0. NaN (a shopper without a figure) is left out.
    noisy = base + rng.normal(0, 0.2, 400)
    noisy[3] = np.nan
    diff, low, high = paired_interval(noisy, base)
    assert low < 0 < high
    compared = against_best({"blend": base + 0.05, "a": base, "b": base - 0.1})
    assert compared["best"] == "a" and compared["low"] > 0
    assert compared["ratio"] == pytest.approx((base.mean() + 0.05) / base.mean(), abs=1e-4)


@pytest.mark.django_db
def test_evaluate_blend_compares_with_visual_and_als_only(product_factory, category_factory):
    from recommendations.offline.blend_evaluation import evaluate_blend, prepare_blend_evaluation
    from recommendations.offline.comparison import against_profile

    data = two_taste_catalogue(product_factory, category_factory, n_shoppers=30, seed=1)
    # Later visits of the same shoppers, in their own group: the held-out part.
    for name in ("a", "b"):
        for key in data["shoppers"][name]:
            for p in data[name][5:8]:
                event(p, "view", session_key=key, days_ago=0.1)
    prepared = prepare_blend_evaluation(k=3, test_fraction=0.3, als_parameters={"factors": 4})
    result = evaluate_blend("default", k=3, data=prepared)
    assert result["profile"] == "default" and result["users"] > 0
    for name in ("blend", "visual_only", "als_only", "popularity_only", "covisitation_only"):
        figures = dict(result[name])
        assert figures.pop("users") == result["users"]
        assert set(figures) == {
            "precision_at_3",
            "recall_at_3",
            "map_at_3",
            "ndcg_at_3",
            "coverage",
            "diversity",
        }
        assert all(0.0 <= v <= 1.0 for v in figures.values())
    # Every segment reports every source, with its protocol written beside the figures.
    assert set(result["segments"]) == {"all", "cold_items", "new_shoppers", "regulars"}
    assert set(result["segment_protocols"]) == set(result["segments"])
    for segment in result["segments"].values():
        assert set(segment) == {
            "blend",
            "visual_only",
            "als_only",
            "popularity_only",
            "covisitation_only",
        }
    assert result["segments"]["all"]["blend"] == result["blend"]
    # The blend against the best single source of each segment, with its uncertainty.
    against = result["blend_against_best"]["all"]
    best = max(BASELINE_NAMES, key=lambda name: result[name]["ndcg_at_3"])
    assert against["best"] == best and against["low"] <= against["difference"] <= against["high"]
    assert against["ratio"] == pytest.approx(
        result["blend"]["ndcg_at_3"] / result[best]["ndcg_at_3"], abs=1e-3
    )
    users = {name: s["blend"]["users"] for name, s in result["segments"].items()}
    assert users["new_shoppers"] + users["regulars"] == users["all"]
    assert result["cold_items"] > 0 and result["segments"]["cold_items"]["blend"]["users"] >= 0
    # Shoppers stay in their group, and so do their held-out products: looks alone find them.
    assert result["visual_only"]["precision_at_3"] > 0.3
    assert result["visual_only"]["diversity"] == 0.0  # one category per group
    # So do the products looked at with theirs.
    assert result["covisitation_only"]["precision_at_3"] > 0.3
    # The command passes its seed on (it draws the cold products and new shoppers).
    out = io.StringIO()
    call_command(
        "evaluate_recommender", "--blend", "default", "--k=3", "--seed=3", "--json", stdout=out
    )
    assert json.loads(out.getvalue())["seed"] == 3 and result["seed"] == 0
    # Two blends on the same data, shopper by shopper: the default against visual alone,
    # which finds every held-out product of these shoppers (one taste each), and itself.
    ours = evaluate_blend("default", k=3, data=prepared, per_user=True, baselines=False)
    visual = evaluate_blend(weights={"visual": 1}, k=3, data=prepared, per_user=True)
    assert "per_user_ndcg" not in result
    assert len(ours["per_user_ndcg"]["all"]) == ours["users"]
    same = against_profile(ours, ours)["all"]
    assert same["difference"] == same["low"] == same["high"] == 0.0
    versus = against_profile(visual, ours)
    assert set(versus) == {"all", "cold_items", "new_shoppers", "regulars"}
    gain = visual["blend"]["ndcg_at_3"] - ours["blend"]["ndcg_at_3"]
    assert versus["all"]["difference"] == pytest.approx(gain, abs=1e-4)
    assert versus["all"]["low"] <= versus["all"]["difference"] <= versus["all"]["high"]
    assert versus["all"]["users"] == ours["users"]
    with pytest.raises(ValueError, match="different shoppers"):  # another split's shoppers
        against_profile({"per_user_ndcg": {"all": [0.5]}}, ours)
    # An empty profile name is the default profile, as in the API.
    out = io.StringIO()
    call_command("evaluate_recommender", "--blend", "", "--k=3", "--json", stdout=out)
    answer = json.loads(out.getvalue())
    assert answer["profile"] == "default" and answer["experiment_events"] is False
    explicit = evaluate_blend(weights={"visual": 1.0}, k=3, data=prepared, baselines=False)
    assert explicit["blend"] == result["visual_only"] and "als_only" not in explicit
    with pytest.raises(ValueError, match="Unknown weight"):
        evaluate_blend(weights={"looks": 1.0}, data=prepared)


@pytest.mark.django_db
def test_the_offline_evaluation_leaves_experiment_events_out_unless_asked(product_factory):
    """simulate_experiment's shoppers click what the served blend showed them; held out,
    their events would reward that blend."""
    from recommendations.offline.shop_events import load_events

    products = product_factory.create_batch(3)
    column = {p.pk: i for i, p in enumerate(products)}
    event(products[0], "view", session_key="demo", source="simulated", simulated=True)
    event(products[1], "similar_click", session_key="trial", source="for-you", simulated=True)
    event(products[2], "cart", session_key="trial", simulated=True)
    event(products[2], "view", session_key="real")
    assert sorted(load_events(True, column).who) == ["s:demo", "s:real"]
    assert sorted(load_events(True, column, include_experiments=True).who) == [
        "s:demo",
        "s:real",
        "s:trial",
        "s:trial",
    ]
    assert list(load_events(False, column).who) == ["s:real"]
