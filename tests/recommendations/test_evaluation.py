"""Evaluation: metrics against hand-computed values, splits, and the MovieLens target."""

import math

import numpy as np
import pytest
import scipy.sparse as sp

from recommendations.datasets import Interactions, load_movielens_100k
from recommendations.evaluation import (
    catalogue_coverage,
    compare_with_popularity,
    evaluate,
    map_at_k,
    ndcg_at_k,
    precision_at_k,
    ranking_metrics,
    recall_at_k,
    time_split,
    train_test_split_per_user,
)
from recommendations.recommenders import ALSRecommender, Recommender

# Two users with relevant items and one without (left out of every mean).
RECOMMENDED = np.array([[1, 2, 3, 4], [5, 6, 7, 8], [1, 2, 3, 4]])
RELEVANT = [[1, 3, 9], [8], []]
# user 0: hits at ranks 1 and 3 of 3 relevant; user 1: a hit at rank 4 of 1 relevant.
IDCG_3 = 1 + 1 / math.log2(3) + 1 / math.log2(4)
EXPECTED = {
    "precision": (2 / 4 + 1 / 4) / 2,
    "recall": (2 / 3 + 1 / 1) / 2,
    "map": ((1 / 1 + 2 / 3) / 3 + (1 / 4) / 1) / 2,
    "ndcg": ((1 + 1 / math.log2(4)) / IDCG_3 + (1 / math.log2(5)) / 1) / 2,
}


def test_metrics_match_hand_computed_values():
    metrics = ranking_metrics(RECOMMENDED, RELEVANT, k=4)
    assert metrics["users"] == 2
    for name, value in EXPECTED.items():
        assert metrics[name] == pytest.approx(value), name
    assert precision_at_k(RECOMMENDED, RELEVANT, k=4) == pytest.approx(0.375)
    assert recall_at_k(RECOMMENDED, RELEVANT, k=4) == pytest.approx(5 / 6)
    assert map_at_k(RECOMMENDED, RELEVANT, k=4) == pytest.approx(EXPECTED["map"])
    assert ndcg_at_k(RECOMMENDED, RELEVANT, k=4) == pytest.approx(EXPECTED["ndcg"])


def test_metrics_accept_a_sparse_relevance_matrix():
    rows = [0, 0, 0, 1]
    relevant = sp.csr_matrix(([1.0, 1.0, 5.0, 2.0], (rows, [1, 3, 9, 8])), shape=(3, 12))
    assert ranking_metrics(RECOMMENDED, relevant, k=4) == ranking_metrics(
        RECOMMENDED, RELEVANT, k=4
    )


def test_metrics_cut_at_k():
    # Only ranks 1-2 count: user 0 has one hit, user 1 none.
    metrics = ranking_metrics(RECOMMENDED, RELEVANT, k=2)
    assert metrics["precision"] == pytest.approx((1 / 2 + 0) / 2)
    assert metrics["recall"] == pytest.approx((1 / 3 + 0) / 2)
    # AP normalised by min(k, |R|) = 2 for user 0.
    assert metrics["map"] == pytest.approx((1 / 2 + 0) / 2)


def test_perfect_and_empty_rankings():
    perfect = ranking_metrics([[3, 1, 7, 0]], [[1, 3]], k=4)
    assert perfect["ndcg"] == pytest.approx(1.0)
    assert perfect["map"] == pytest.approx(1.0)
    assert perfect["recall"] == pytest.approx(1.0)
    assert perfect["precision"] == pytest.approx(0.5)  # 2 hits over k=4
    empty = ranking_metrics([[-1, -1, -1]], [[0]], k=3)
    assert empty["precision"] == empty["ndcg"] == 0.0


def test_short_lists_are_padded_not_rejected():
    # A catalogue of 2 items asked for k=5: precision still divides by 5.
    assert precision_at_k([[0, 1]], [[0, 1]], k=5) == pytest.approx(2 / 5)


def test_catalogue_coverage():
    assert catalogue_coverage([[0, 1], [1, -1]], n_items=4) == 0.5


# -- splits --------------------------------------------------------------------------------


def test_per_user_split_is_a_disjoint_partition_with_the_expected_counts():
    counts = [1, 2, 3, 4, 8, 20]
    rows = np.repeat(np.arange(len(counts)), counts)
    cols = np.concatenate([np.arange(n) for n in counts])
    weights = np.arange(1, len(rows) + 1, dtype=np.float32)
    user_items = sp.csr_matrix((weights, (rows, cols)), shape=(len(counts), 20))
    train, test = train_test_split_per_user(user_items, test_fraction=0.25, seed=0)
    assert (train + test != user_items).nnz == 0  # weights kept, nothing lost
    assert train.multiply(test).nnz == 0
    # round(n / 4), halves up, capped so that one item stays in train.
    np.testing.assert_array_equal(np.diff(test.indptr), [0, 1, 1, 1, 2, 5])
    again, _ = train_test_split_per_user(user_items, test_fraction=0.25, seed=0)
    assert (again != train).nnz == 0
    other, _ = train_test_split_per_user(user_items, test_fraction=0.25, seed=1)
    assert (other != train).nnz > 0


def test_time_split_holds_out_the_latest_events():
    interactions = Interactions(
        user_ids=np.array(["u1", "u1", "u1", "u2", "u2", "u3"]),
        item_ids=np.array(["a", "b", "a", "a", "c", "c"]),
        weights=np.ones(6, np.float32),
        timestamps=np.array([1.0, 2.0, 9.0, 3.0, 8.0, 7.0]),
    )
    train, test = time_split(interactions, cutoff=7.0)
    # Rows u1, u2, u3; columns a, b, c, as to_user_items() orders them.
    np.testing.assert_array_equal(train.toarray(), [[1, 1, 0], [1, 0, 0], [0, 0, 0]])
    # u1's late "a" is already in train, so it cannot be a hit and is dropped.
    np.testing.assert_array_equal(test.toarray(), [[0, 0, 0], [0, 0, 1], [0, 0, 1]])
    by_fraction, _ = time_split(interactions, test_fraction=0.5)
    assert by_fraction.nnz == train.nnz
    with pytest.raises(ValueError, match="timestamps"):
        time_split(Interactions(np.array(["u"]), np.array(["i"]), np.ones(1, np.float32)))


# -- evaluate ------------------------------------------------------------------------------


class Oracle(Recommender):
    """Scores items by a fixed matrix, to test evaluate() without a learning model."""

    name = ""  # not registered

    def __init__(self, scores):
        super().__init__()
        self.scores = np.asarray(scores, dtype=np.float32)

    def fit(self, user_items, callback=None):
        self.user_items = sp.csr_matrix(user_items)
        return self

    def _score_rows(self, rows, userids):
        return self.scores[userids]


def test_evaluate_filters_training_items_and_names_keys_by_k():
    train = sp.csr_matrix(np.array([[1, 0, 0, 0, 0], [0, 1, 0, 0, 0], [1, 0, 0, 0, 0]]))
    test = sp.csr_matrix(np.array([[0, 1, 0, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 0]]))
    # The oracle likes training items best; evaluate must filter them out, leaving
    # user 0 with items [1, 2] (hit first) and user 1 with [0, 2] (no hit).
    scores = [[9, 8, 7, 1, 0], [8, 9, 7, 1, 0], [9, 8, 7, 1, 0]]
    result = evaluate(Oracle(scores), train, test, k=2)
    assert set(result) == {"precision_at_2", "recall_at_2", "map_at_2", "ndcg_at_2", "coverage"}
    assert result["precision_at_2"] == pytest.approx((1 / 2 + 0) / 2)
    assert result["recall_at_2"] == pytest.approx(0.5)
    assert result["ndcg_at_2"] == pytest.approx(0.5)
    assert result["coverage"] == pytest.approx(3 / 5)  # items 0, 1, 2


def test_evaluate_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        evaluate(Oracle(np.zeros((2, 3))), sp.csr_matrix((2, 3)), sp.csr_matrix((2, 4)))


@pytest.mark.slow
def test_als_beats_popularity_on_movielens_100k():
    """The project's target, under the protocol of published figures (75/25 per user)."""
    user_items, _, _ = load_movielens_100k().to_user_items(binary=True)
    assert user_items.shape == (943, 1682)
    train, test = train_test_split_per_user(user_items, test_fraction=0.25, seed=0)
    result = compare_with_popularity(ALSRecommender(), train, test, k=10)
    model, popularity = result["model"], result["popularity"]
    assert set(model) == {"precision_at_10", "recall_at_10", "map_at_10", "ndcg_at_10", "coverage"}
    assert model["precision_at_10"] >= 0.35, result
    assert model["ndcg_at_10"] >= 1.5 * popularity["ndcg_at_10"], result
    assert model["coverage"] > popularity["coverage"]


def test_intra_list_diversity_counts_pairs_of_different_categories():
    from recommendations.evaluation import intra_list_diversity

    categories = np.array([0, 0, 1, 2])
    # [0, 1, 2]: categories 0,0,1 -> 1 same pair of 3 -> 2/3; [3, 2, -1]: 2,1 -> 1.0
    recommended = np.array([[0, 1, 2], [3, 2, -1], [0, -1, -1]])
    assert intra_list_diversity(recommended, categories) == pytest.approx((2 / 3 + 1.0) / 2)
