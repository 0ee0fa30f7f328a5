"""The three analysts' notebooks run headless, end to end, against a small generated shop.

Each notebook runs in a fresh ``python3`` kernel of this virtualenv (nbclient), on the
shop the ``notebook_shop`` fixture committed to the test database, with its parameters
cell overridden by small values. Each notebook ends with a JSON summary cell; the tests
read it back to check the figures as well as the pictures.
"""

import pytest

from .conftest import outputs_of_type, run_notebook, text_of

# django_db: the test database must exist for the kernel; the data comes from the fixture.
pytestmark = [pytest.mark.slow, pytest.mark.django_db]


def serve(profile):
    """Make ``profile`` the default in a connection of its own, which commits at once (this
    test's transaction would hold the rows the kernel must write)."""
    import threading

    from django.db import connection

    from recommendations.services.profiles import make_default

    def run():
        try:
            make_default(profile)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()


def summary(nb):
    """The notebook's closing ``application/json`` output."""
    found = outputs_of_type(nb, "application/json")
    assert found, "the notebook produced no JSON summary"
    return found[-1]["data"]["application/json"]


def test_01_explore_embeddings(notebook_shop):
    nb = run_notebook(
        "01_explore_embeddings.ipynb",
        notebook_shop,
        {
            "N_QUERIES": 120,
            "MAP_POINTS": 200,
            "MAP_METHOD": "pca",
            "SHOW_QUERIES": 3,
            "SHOW_WORST": 3,
        },
    )
    # The map, the neighbour grid, the per-category bars and the worst queries.
    assert len(outputs_of_type(nb, "image/png")) >= 4
    result = summary(nb)
    assert result["queries"] == 120
    assert len(result["per_category"]) == 10
    # Ten balanced categories: chance is 0.1. Pretrained features on Fashion-MNIST do far
    # better; a broken search (wrong vectors, the query as its own neighbour) does not.
    assert 0.4 < result["precision_at_10"] <= 1.0


def test_02_tune_blend_publishes_the_default_profile(notebook_shop):
    """The tuned profile replaces the default only when it is surely better on all
    shoppers of the split and surely worse for none; otherwise it is published beside the
    default, which stays, and the notebook says why."""
    from recommendations.models import BlendProfile

    nb = run_notebook(
        "02_tune_blend.ipynb",
        notebook_shop,
        {"N_CANDIDATES": 3, "PROFILE_NAME": "notebook-test", "PUBLISH": True, "SHOW_K": 5},
    )
    assert len(outputs_of_type(nb, "image/png")) >= 3
    result = summary(nb)
    # Published by the kernel and committed: this test's transaction sees it.
    profile = BlendProfile.objects.get(name__startswith="notebook-test")
    assert profile.weights == pytest.approx(result["weights"])
    assert profile.metrics["ndcg_at_10"] == pytest.approx(result["metrics"]["ndcg_at_10"])
    assert "02_tune_blend" in profile.notes
    previous = profile.metrics["previous_default"]
    assert previous["profile"] == notebook_shop.default_profile
    # The difference on all shoppers is that of the two figures stored beside it.
    against = profile.metrics["against_previous_default"]
    assert set(against) == {"all", "cold_items", "new_shoppers", "regulars"}
    gain = profile.metrics["segments"]["all"]["blend"] - previous["ndcg_at_10"]
    assert against["all"]["difference"] == pytest.approx(gain, abs=1e-4)
    assert against["all"]["low"] <= against["all"]["difference"] <= against["all"]["high"]
    surely = against["all"]["low"] > 0 and not any(f["high"] < 0 for f in against.values())
    default = BlendProfile.objects.get(is_default=True)
    said = text_of(nb)
    if surely:
        assert default == profile and "Not made the default" not in said
    else:
        assert default.name == notebook_shop.default_profile != profile.name
        assert "Not made the default" in said and "Published beside it" in said
    # Run again with its profile served: never a second profile with the served weights.
    before = set(BlendProfile.objects.values_list("name", flat=True))
    serve(profile)  # committed, for the kernel to see
    try:
        again = run_notebook(
            "02_tune_blend.ipynb",
            notebook_shop,
            {"N_CANDIDATES": 3, "PROFILE_NAME": "notebook-test", "PUBLISH": True, "SHOW_K": 5},
        )
    finally:
        serve(BlendProfile.objects.get(name=notebook_shop.default_profile))
    new = BlendProfile.objects.exclude(name__in=before)
    if "The chosen weights are those the default profile" in text_of(again):
        assert not new.exists()
    else:
        assert all(p.weights != profile.weights for p in new)


def test_03_recommender_eval(notebook_shop):
    nb = run_notebook(
        "03_recommender_eval.ipynb",
        notebook_shop,
        {
            "ML_USERS": 300,
            "ML_SWEEP": {
                "factors": [16],
                "regularization": [5.0, 20.0],
                "alpha": [2.0],
                "iterations": [5],
            },
            "SHOP_SWEEP": {
                "factors": [8],
                "regularization": [1.0, 5.0],
                "alpha": [2.0],
                "iterations": [5],
            },
            "ITERATIONS_CURVE": [1, 5],
        },
    )
    # Sweep and heatmap for each data set, and the iterations curve.
    assert len(outputs_of_type(nb, "image/png")) >= 5
    result = summary(nb)
    assert result["movielens"]["candidates"] == 2
    assert result["shop"]["candidates"] == 2
    # ALS must beat popularity on MovieLens: it does by a wide margin even when tiny.
    assert result["movielens"]["best"]["ndcg_at_10"] > result["movielens"]["popularity"]
