"""publish_profile: what it refuses, and that a new default is served at once."""

import pytest

from recommendations.blending.blend import recommend_for_user
from recommendations.models import BlendProfile
from recommendations.services.profiles import InvalidProfile, get_profile, publish_profile
from tests.recommendations.blend_support import (  # noqa: F401 (fixture)
    blend_environment,
    embed,
    event,
    train_model,
    two_taste_catalogue,
)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "weights, message",
    [
        ({"visual": 0, "popularity": 0}, "All weights are zero"),
        ({"popularity": -0.5, "recency": 1}, "popularity weight is negative"),
        ({"popularity": 1, "colour": 1}, "Unknown weight(s) colour"),
        ({"popularity": "lots"}, "must be a number"),
        ({"popularity": float("nan")}, "must be finite"),
        ({}, "weights must be a dict"),
    ],
)
def test_refuses_bad_weights(weights, message):
    with pytest.raises(InvalidProfile, match=message.replace("(", r"\(").replace(")", r"\)")):
        publish_profile("bad", weights)
    assert not BlendProfile.objects.filter(name="bad").exists()


@pytest.mark.django_db
def test_refuses_visual_weight_without_embeddings(product):
    with pytest.raises(InvalidProfile, match="no product has an embedding for the active encoder"):
        publish_profile("looks", {"visual": 1.0})
    embed(product, [1, 0, 0, 0])
    assert publish_profile("looks", {"visual": 1.0}).visual_weight == 1.0


@pytest.mark.django_db
def test_refuses_collaborative_weights_without_a_trained_model(product_factory, category_factory):
    with pytest.raises(InvalidProfile, match="collaborative weight is 0.5 .*no trained"):
        publish_profile("cf", {"collaborative": 0.5, "popularity": 0.5})
    with pytest.raises(InvalidProfile, match="affinity weight"):
        publish_profile("cf", {"affinity": 1.0})
    two_taste_catalogue(product_factory, category_factory, n_per_group=6, n_shoppers=6)
    train_model()
    profile = publish_profile("cf", {"collaborative": 0.5, "affinity": 0.5})
    assert profile.weights["collaborative"] == 0.5 and profile.popularity_weight == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    "diversity, message",
    [
        ("shuffle", "Unknown diversity method 'shuffle'"),
        (("mmr", 1.5), "diversity setting must be between 0 and 1"),
        (("category_cap", 0.5), "whole number of at least 1"),
        (("category_cap", float("inf")), "must be a finite number"),
        (("mmr", float("nan")), "must be a finite number"),
        ({"method": "mmr", "lambda": 0.5}, "Unknown diversity key"),
    ],
)
def test_refuses_bad_diversity(diversity, message):
    with pytest.raises(InvalidProfile, match=message):
        publish_profile("div", {"popularity": 1}, diversity=diversity)


@pytest.mark.django_db
def test_refuses_bad_names_rules_and_metrics():
    with pytest.raises(InvalidProfile, match="must be a slug"):
        publish_profile("summer sale!", {"popularity": 1})
    with pytest.raises(InvalidProfile, match="Unknown rule"):
        publish_profile("ok", {"popularity": 1}, rules={"in_stock": True})
    with pytest.raises(InvalidProfile, match="metrics must be plain JSON"):
        publish_profile("ok", {"popularity": 1}, metrics={"ndcg": float("inf")})
    # Hostile values from a notebook: each refused in words, nothing saved.
    deep = {}
    for _ in range(100_000):
        deep = {"x": deep}
    for kwargs, message in (
        ({"name": 12345}, "must be text, not int"),
        ({"notes": 5}, "notes must be text"),
        ({"metrics": deep}, "metrics must be plain JSON"),
        ({"metrics": {"x": "y" * 1_000_001}}, "at most 1,000,000 are kept"),
        ({"weights": {f"k{i}": 1 for i in range(200_000)}}, "and 199990 more"),
    ):
        args = {"name": "ok", "weights": {"popularity": 1}, **kwargs}
        with pytest.raises(InvalidProfile, match=message) as refused:
            publish_profile(**args)
        assert len(str(refused.value)) < 1000
    assert publish_profile("ok", {"popularity": 1}, notes=None).notes == ""
    assert BlendProfile.objects.filter(name="ok").count() == 1


@pytest.mark.django_db
def test_a_profile_that_is_an_arm_of_a_running_experiment_is_not_changed():
    """An arm serves its profile as it is: republishing it mid-experiment would mix two
    blends in one arm's figures."""
    from recommendations.experiments.services import (
        create_experiment,
        start_experiment,
        stop_experiment,
    )

    publish_profile("arm-a", {"popularity": 1})
    publish_profile("arm-b", {"recency": 1})
    experiment = create_experiment("ab", [("a", "arm-a", 1), ("b", "arm-b", 1)])
    publish_profile("arm-b", {"recency": 2})  # a draft: still editable
    start_experiment(experiment)
    with pytest.raises(InvalidProfile, match="arm of the running experiment 'ab'"):
        publish_profile("arm-b", {"recency": 3})
    assert BlendProfile.objects.get(name="arm-b").recency_weight == 2
    publish_profile("arm-c", {"recency": 3})  # another name is fine
    stop_experiment(experiment)
    assert publish_profile("arm-b", {"recency": 3}).recency_weight == 3


@pytest.mark.django_db
def test_published_default_is_served_at_once(product_factory, django_user_model):
    products = product_factory.create_batch(4)
    event(products[3], "purchase", session_key="crowd")
    analyst = django_user_model.objects.create_user("ana", password="pw-ana-123")
    before = recommend_for_user(k=4)
    assert before[0].reason != "Popular now" or before[0].product == products[3]
    profile = publish_profile(
        "popular",
        {"popularity": 1.0},
        diversity="none",
        rules={"exclude_purchased": False},
        metrics={"ndcg_at_10": 0.12},
        user=analyst,
        make_default=True,
        notes="from the notebook",
    )
    assert get_profile() == profile and profile.created_by == analyst
    assert BlendProfile.objects.filter(is_default=True).count() == 1
    after = recommend_for_user(k=4)
    assert after[0].product == products[3] and after[0].reason == "Popular now"
    # Publishing again under the same name updates the profile (the default: if asked to).
    again = publish_profile(
        "popular", {"recency": 1.0}, diversity=("category_cap", 2), make_default=True
    )
    assert again.pk == profile.pk and again.recency_weight == 1.0 and again.popularity_weight == 0
    assert again.diversity_param == 2.0 and get_profile().pk == profile.pk


@pytest.mark.django_db
def test_the_default_profile_changes_only_when_asked():
    """Re-publishing the default's name with make_default=False (notebook 02 run again,
    its weights not beating the default's) must not change what every shopper is served."""
    default = publish_profile("tuned", {"popularity": 1.0}, make_default=True)
    with pytest.raises(InvalidProfile, match="is the default profile"):
        publish_profile("tuned", {"recency": 1.0})
    default.refresh_from_db()
    assert default.is_default and default.popularity_weight == 1 and default.recency_weight == 0
    again = publish_profile("tuned", {"recency": 1.0}, make_default=True)
    assert again.is_default and again.recency_weight == 1


@pytest.mark.django_db(transaction=True)
def test_notebooks_publishing_one_new_name_at_once_all_succeed():
    """The row does not exist yet, so no lock holds the others back: the ones that lose
    the insert update the profile instead of failing."""
    import threading

    from django.db import connection

    barrier, errors = threading.Barrier(4), []

    def publish(i):
        try:
            barrier.wait()
            publish_profile("fresh", {"popularity": 1 + i})
        except Exception as exc:  # noqa: BLE001 - any failure is the test's finding
            errors.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=publish, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == [] and BlendProfile.objects.filter(name="fresh").count() == 1
