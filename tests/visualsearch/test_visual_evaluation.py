"""Retrieval metrics on hand-computed cases (pure numpy, no database)."""

import numpy as np
import pytest

from visualsearch.evaluation import (
    map_at_k,
    per_category,
    precision_at_k,
    robust_hit_at_k,
    search,
)

QUERY = np.array([0, 1, 1])
RESULTS = np.array(
    [
        [0, 1, 0, 0],  # hits at ranks 1, 3, 4
        [0, 0, 1, 1],  # hits at ranks 3, 4
        [2, 2, 2, 2],  # no hit
    ]
)


def test_precision_at_k():
    assert precision_at_k(QUERY, RESULTS) == pytest.approx((3 / 4 + 2 / 4 + 0) / 3)
    assert precision_at_k(QUERY, RESULTS, k=1) == pytest.approx(1 / 3)
    assert precision_at_k(QUERY, RESULTS, k=2) == pytest.approx((1 / 2) / 3)


def test_map_at_k_normalised_by_hits():
    ap0 = (1 / 1 + 2 / 3 + 3 / 4) / 3
    ap1 = (1 / 3 + 2 / 4) / 2
    assert map_at_k(QUERY, RESULTS) == pytest.approx((ap0 + ap1 + 0) / 3)


def test_map_at_k_normalised_by_relevant_set():
    # With 10 relevant items per category, at most k=4 hits are possible.
    ap0 = (1 / 1 + 2 / 3 + 3 / 4) / 4
    ap1 = (1 / 3 + 2 / 4) / 4
    assert map_at_k(QUERY, RESULTS, n_relevant=10) == pytest.approx((ap0 + ap1) / 3)
    assert map_at_k([0], [[0, 0]], n_relevant=1) == pytest.approx(1.0)


def test_perfect_and_empty_retrieval():
    labels = np.array([3, 4])
    perfect = np.array([[3, 3], [4, 4]])
    assert precision_at_k(labels, perfect) == 1.0
    assert map_at_k(labels, perfect) == 1.0
    wrong = np.array([[4, 4], [3, 3]])
    assert precision_at_k(labels, wrong) == 0.0
    assert map_at_k(labels, wrong) == 0.0


def test_per_category():
    report = per_category(QUERY, RESULTS)
    assert list(report) == [0, 1]
    assert report[0] == {"n": 1, "precision": 0.75, "map": pytest.approx((1 + 2 / 3 + 3 / 4) / 3)}
    assert report[1]["n"] == 2
    assert report[1]["precision"] == pytest.approx((0.5 + 0.0) / 2)


def test_string_labels():
    report = per_category(["shoe", "bag"], [["shoe", "bag"], ["bag", "bag"]])
    assert report == {
        "bag": {"n": 1, "precision": 1.0, "map": 1.0},
        "shoe": {"n": 1, "precision": 0.5, "map": 1.0},
    }


def test_robust_hit_at_k():
    ids = np.array([10, 11, 12])
    results = np.array([[10, 1, 2], [1, 2, 11], [1, 2, 3]])
    assert robust_hit_at_k(ids, results) == pytest.approx(2 / 3)
    assert robust_hit_at_k(ids, results, k=1) == pytest.approx(1 / 3)


@pytest.mark.parametrize("k", [0, 5])
def test_bad_k(k):
    with pytest.raises(ValueError, match="k must be"):
        precision_at_k(QUERY, RESULTS, k=k)


def test_shape_mismatch():
    with pytest.raises(ValueError, match="query_labels"):
        precision_at_k([0, 1], RESULTS)
    with pytest.raises(ValueError, match="2-D"):
        robust_hit_at_k([0], [0])


def test_search_matches_brute_force():
    rng = np.random.default_rng(0)
    catalogue = rng.normal(size=(50, 8)).astype(np.float32)
    catalogue /= np.linalg.norm(catalogue, axis=1, keepdims=True)
    queries = catalogue[:5] + 0.01 * rng.normal(size=(5, 8)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    idx, scores = search(queries, catalogue, k=3)
    expected = np.argsort(-(queries @ catalogue.T), axis=1)[:, :3]
    assert np.array_equal(idx, expected)
    assert np.all(np.diff(scores, axis=1) <= 0)
    assert robust_hit_at_k(np.arange(5), idx, k=1) == 1.0
    # Excluding the query's own row pushes it out of the results.
    idx2, _ = search(queries, catalogue, k=3, exclude=np.arange(5))
    assert not np.any(idx2 == np.arange(5)[:, None])
