"""Notebook 04 runs headless against the small generated shop: it makes the experiment of
the README (the default profile against ALS alone), runs simulated shoppers against it,
draws the figures and stops it."""

import pytest

from .conftest import outputs_of_type, run_notebook

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


def test_04_experiments(notebook_shop):
    from recommendations.models import BlendProfile, Experiment, Impression

    nb = run_notebook(
        "04_experiments.ipynb",
        notebook_shop,
        {"NEW_EXPERIMENT_SHOPPERS": 12, "VISITS": 2, "STOP": True, "EXPERIMENT": "nb-test"},
    )
    # The rates with their intervals and the rate as the data came in (PNG), the SVG.
    assert len(outputs_of_type(nb, "image/png")) >= 2
    assert outputs_of_type(nb, "image/svg+xml")
    result = outputs_of_type(nb, "application/json")[-1]["data"]["application/json"]
    experiment = Experiment.objects.get(name="nb-test")
    assert result["status"] == experiment.status == "stopped"
    # Stopped without a winner: the default profile did not change.
    assert BlendProfile.objects.get(is_default=True).name == notebook_shop.default_profile
    assert set(result["arms"]) == {"control", "als-only"}
    strips = sum(arm["strips"] for arm in result["arms"].values())
    assert strips == 12 * 2  # one "For you" strip per visit
    assert Impression.objects.filter(experiment=experiment, simulated=True).exists()
    for arm in result["arms"].values():
        assert 0.0 <= arm["ctr"] <= 1.0
