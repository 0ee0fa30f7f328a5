"""The management commands: outputs and clear errors."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from recommendations.models import Event, RecommenderModel
from tests.recommendations.recsys_support import SMALL_ALS, recsys_environment, two_groups

METRICS = {"precision_at_10", "recall_at_10", "map_at_10", "ndcg_at_10", "coverage"}


@pytest.fixture(autouse=True)
def _environment(settings, tmp_path):
    yield from recsys_environment(settings, tmp_path)


def run(*args, **options):
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO(), **options)
    return out.getvalue()


@pytest.mark.slow
def test_evaluate_movielens_prints_model_and_popularity_json():
    data = json.loads(run("evaluate_recommender", "--dataset", "movielens-100k", "--json"))
    assert {"model", "popularity", "dataset", "users", "items", "interactions"} <= set(data)
    assert (data["users"], data["items"], data["interactions"]) == (943, 1682, 100000)
    assert set(data["model"]) == METRICS and set(data["popularity"]) == METRICS
    # ALS must beat the baseline clearly (published BPR: P@10 0.388, NDCG@10 0.442).
    assert data["model"]["precision_at_10"] > 0.38 > data["popularity"]["precision_at_10"]
    assert data["model"]["ndcg_at_10"] > 0.44


def test_evaluate_a_csv_and_its_errors(tmp_path):
    good = tmp_path / "good.csv"
    rows = ["user,item,weight"] + [
        f"u{u},i{(u % 2) * 6 + j},1" for u in range(30) for j in range(u % 3, u % 3 + 4)
    ]
    good.write_text("\n".join(rows) + "\n")
    data = json.loads(
        run("evaluate_recommender", "--interactions", str(good), "--json", "--factors", "4")
    )
    assert data["dataset"] == "good.csv" and data["users"] == 30 and data["items"] == 12
    assert set(data["model"]) == METRICS
    text = run("evaluate_recommender", "--interactions", str(good), "--factors", "4")
    assert "precision_at_10" in text and "popularity" in text

    missing_column = tmp_path / "bad.csv"
    missing_column.write_text("user,product\n1,2\n")
    with pytest.raises(CommandError, match="missing column"):
        run("evaluate_recommender", "--interactions", str(missing_column))
    bad_weight = tmp_path / "weight.csv"
    bad_weight.write_text("user,item,weight\n1,2,1\n1,3,-4\n")
    with pytest.raises(CommandError, match="line 3"):
        run("evaluate_recommender", "--interactions", str(bad_weight))
    with pytest.raises(CommandError, match="no such file"):
        run("evaluate_recommender", "--interactions", str(tmp_path / "nope.csv"))


@pytest.mark.django_db
def test_evaluate_blend_with_an_unknown_profile_is_a_command_error():
    with pytest.raises(CommandError):
        run("evaluate_recommender", "--blend", "no-such-profile")


@pytest.mark.django_db
def test_train_recommender_without_events_then_with(product_factory, category_factory, monkeypatch):
    with pytest.raises(CommandError, match="no shopper events"):
        run("train_recommender")
    two_groups(product_factory, category_factory)
    args = [f"--{name}={value}" for name, value in SMALL_ALS.items()]
    out = run("train_recommender", *args)
    assert "Trained recommender v1 (active)" in out and "40 shoppers, 16 products" in out
    assert "precision@10" in out
    # 40 shoppers scored: no warning; with the bar above them, the figures are flagged.
    assert "too few for these figures" not in out
    from recommendations.management.commands import train_recommender

    monkeypatch.setattr(train_recommender, "FEW_SHOPPERS", 1000)
    assert "shopper(s) only: too few for these figures" in run("train_recommender", *args)
    row = RecommenderModel.objects.filter(version=1).get()
    assert row.parameters["factors"] == SMALL_ALS["factors"]
    with pytest.raises(CommandError, match="factors must be a number above 0"):
        run("train_recommender", "--factors=0")


@pytest.mark.django_db
def test_simulate_shoppers_command(product_factory):
    for _ in range(12):
        product_factory()
    out = run("simulate_shoppers", "--users", "20", "--seed", "5", "--days", "7")
    assert "Simulated 20 shoppers" in out and "ground truth in" in out
    n = Event.objects.filter(simulated=True).count()
    out = run("simulate_shoppers", "--users", "20", "--seed", "5", "--days", "7")
    assert f"replaced {n} earlier events of seed 5" in out
    assert Event.objects.filter(simulated=True).count() == n
    with pytest.raises(CommandError, match="--users must be from 1"):
        run("simulate_shoppers", "--users", "0")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train_recommender", "--alpha", "nan"], "alpha must be a number above 0"),
        (["train_recommender", "--regularization", "inf"], "regularization must be a number"),
        (["train_recommender", "--factors", "100000000"], "at most 1024"),
        (["train_recommender", "--days", "99999999999"], "--days must be from 0"),
        (["evaluate_recommender", "--dataset", "movielens-100k", "--iterations", "0"], "above 0"),
        (["evaluate_recommender", "--dataset", "movielens-100k", "--seed", "-1"], "--seed"),
        (["evaluate_recommender", "--blend", "default", "--k", "1000000000"], "--k must be"),
        (["evaluate_recommender", "--blend", "default", "--factors", "5"], "not to --blend"),
        (
            ["evaluate_recommender", "--dataset", "movielens-100k", "--with-experiment-events"],
            "applies to --blend only",
        ),
        (["simulate_shoppers", "--days", "9999999999"], "--days must be from 1 to 3650"),
        (["simulate_shoppers", "--users", "1000000000000"], "--users must be from 1"),
        (["run_jobs", "--poll", "nan"], "--poll must be from"),
        (["run_jobs", "--poll", "0"], "--poll must be from"),
    ],
)
def test_commands_refuse_values_that_would_crash_or_run_away_before_any_work(args, message):
    """NaN and infinity, negative seeds, sizes that would allocate terabytes or run for
    ever: a one-line error before anything is read or written, never a traceback."""
    events = Event.objects.count()
    with pytest.raises(CommandError, match=message):
        run(*args)
    assert Event.objects.count() == events and not RecommenderModel.objects.exists()
