"""Recommenders: shared behaviour over every implementation, then what only one does.

The fixture matrix has a known structure: users 0-29 interact only with items 0-9
("group A"), users 30-39 only with items 10-19 ("group B"), so group A items are the
popular ones. A model that learns anything must keep group B users in group B, where
popularity sends everyone to group A.
"""

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from recommendations.recommenders import (
    ALSRecommender,
    PopularityRecommender,
    Recommender,
    get_recommender_class,
)

N_ITEMS = 24  # items 20-23 are never interacted with
GROUP_A = np.arange(0, 10)
GROUP_B = np.arange(10, 20)
ROOT = Path(__file__).resolve().parents[2]


def make_user_items(seed=0):
    rng = np.random.default_rng(seed)
    rows, cols = [], []
    for user in range(40):
        group = GROUP_A if user < 30 else GROUP_B
        items = rng.choice(group, size=6, replace=False)
        rows += [user] * len(items)
        cols += list(items)
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(40, N_ITEMS))


@pytest.fixture(scope="module")
def user_items():
    return make_user_items()


FACTORIES = {
    # Few factors and a firm penalty: 40 users cannot support more without overfitting.
    "als": lambda: ALSRecommender(factors=4, regularization=5.0, alpha=5.0, iterations=20),
    "popularity": PopularityRecommender,
}


@pytest.fixture(params=sorted(FACTORIES), scope="module")
def fitted(request, user_items):
    return FACTORIES[request.param]().fit(user_items)


# -- shared behaviour ---------------------------------------------------------------------


def test_recommend_returns_k_best_first_without_seen_items(fitted, user_items):
    ids, scores = fitted.recommend(3, k=5)
    assert ids.shape == scores.shape == (5,)
    assert ids.dtype == np.int32 and scores.dtype == np.float32
    assert np.all(np.diff(scores) <= 0)
    assert not set(ids) & set(user_items[3].indices)
    assert len(set(ids)) == 5


def test_recommend_can_keep_seen_items(fitted, user_items):
    ids, _ = fitted.recommend(3, k=N_ITEMS, filter_already_liked=False)
    assert sorted(ids) == list(range(N_ITEMS))


def test_recommend_honours_filter_items(fitted):
    unfiltered, _ = fitted.recommend(3, k=3)
    ids, _ = fitted.recommend(3, k=3, filter_items=unfiltered[:2])
    assert not set(ids) & set(unfiltered[:2])


def test_batch_matches_single_users(fitted):
    ids, scores = fitted.recommend(np.array([0, 5, 35]), k=4)
    assert ids.shape == (3, 4)
    for row, user in enumerate([0, 5, 35]):
        single_ids, single_scores = fitted.recommend(user, k=4)
        np.testing.assert_array_equal(ids[row], single_ids)
        np.testing.assert_allclose(scores[row], single_scores, rtol=1e-5)


def test_too_few_items_left_are_padded(fitted, user_items):
    # 24 items, 6 seen, 17 filtered: one left, the other slots are empty.
    seen = set(user_items[0].indices)
    unseen = [i for i in range(N_ITEMS) if i not in seen]
    ids, scores = fitted.recommend(0, k=5, filter_items=unseen[1:])
    assert ids[0] == unseen[0] and np.isfinite(scores[0])
    assert list(ids[1:]) == [-1] * 4
    assert np.all(np.isneginf(scores[1:]))


def test_k_larger_than_catalogue_is_capped(fitted):
    ids, _ = fitted.recommend(0, k=100, filter_already_liked=False)
    assert ids.shape == (N_ITEMS,)


def test_session_row_is_recommended_without_its_items(fitted):
    session = sp.csr_matrix(([1.0, 1.0], ([0, 0], [12, 15])), shape=(1, N_ITEMS))
    ids, scores = fitted.recommend(session, k=4)
    assert ids.shape == (4,)
    assert not {12, 15} & set(ids)


def test_similar_items_leaves_the_item_out(fitted):
    ids, scores = fitted.similar_items(2, k=5)
    assert ids.shape == (5,)
    assert 2 not in ids
    assert np.all(np.diff(scores) <= 0)


def test_save_load_round_trip(fitted, tmp_path):
    path = fitted.save(tmp_path / "model.npz")
    # The artefact must be readable without pickles: that is what load() relies on.
    with np.load(path, allow_pickle=False) as npz:
        assert str(npz["recommender"]) == fitted.name
    loaded = Recommender.load(path)
    assert type(loaded) is type(fitted)
    users = np.arange(40)
    for a, b in zip(fitted.recommend(users, k=5), loaded.recommend(users, k=5), strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(fitted.similar_items(12, k=5), loaded.similar_items(12, k=5), strict=True):
        np.testing.assert_array_equal(a, b)
    session = sp.csr_matrix(([1.0], ([0], [12])), shape=(1, N_ITEMS))
    np.testing.assert_array_equal(
        fitted.recommend(session, k=5)[0], loaded.recommend(session, k=5)[0]
    )
    assert type(fitted).load(path).n_items == N_ITEMS


def test_load_refuses_another_class(fitted, tmp_path):
    path = fitted.save(tmp_path / "model.npz")
    other = ALSRecommender if isinstance(fitted, PopularityRecommender) else PopularityRecommender
    with pytest.raises(ValueError, match="holds a"):
        other.load(path)


def test_unfitted_raises(fitted):
    with pytest.raises(RuntimeError, match="not fitted"):
        type(fitted)().recommend(0)


def test_unknown_user_raises(fitted):
    with pytest.raises(IndexError):
        fitted.recommend(40)


def test_progress_callback_reaches_total(fitted, user_items):
    calls = []
    type(fitted)().fit(user_items, callback=lambda done, total: calls.append((done, total)))
    assert calls and calls[-1][0] == calls[-1][1]
    assert [done for done, _ in calls] == list(range(1, len(calls) + 1))


def test_registry():
    assert get_recommender_class("als") is ALSRecommender
    with pytest.raises(ValueError, match="Unknown recommender"):
        get_recommender_class("svd")


# -- what the structure says ----------------------------------------------------------------


def test_als_keeps_users_in_their_group(user_items):
    model = FACTORIES["als"]().fit(user_items)
    ids, _ = model.recommend(np.arange(40), k=3)
    for user in range(40):
        group = GROUP_A if user < 30 else GROUP_B
        assert set(ids[user]) <= set(group), (user, ids[user])
    # Popularity, by contrast, sends group B users to the popular group A.
    popular, _ = PopularityRecommender().fit(user_items).recommend(35, k=3)
    assert set(popular) <= set(GROUP_A)


def test_als_similar_items_stay_in_group(user_items):
    model = FACTORIES["als"]().fit(user_items)
    for item in range(20):
        ids, _ = model.similar_items(item, k=5)
        assert set(ids) <= set(GROUP_A if item < 10 else GROUP_B), (item, ids)


def test_als_recalculates_a_cold_start_session(user_items):
    model = FACTORIES["als"]().fit(user_items)
    session = sp.csr_matrix(([1.0, 1.0, 1.0], ([0, 0, 0], [11, 13, 17])), shape=(1, N_ITEMS))
    factor = model.recalculate_user(session)
    assert factor.shape == (4,)
    ids, _ = model.recommend(session, k=3)
    assert set(ids) <= set(GROUP_B)
    np.testing.assert_allclose(
        model.item_factors[ids] @ factor, model.recommend(session, k=3)[1], rtol=1e-4
    )


def test_als_is_reproducible_with_a_seed(user_items):
    a = FACTORIES["als"]().fit(user_items)
    b = FACTORIES["als"]().fit(user_items)
    np.testing.assert_allclose(a.item_factors, b.item_factors, rtol=1e-5, atol=1e-6)


def test_popularity_ranks_by_distinct_users():
    # Item 2 has the largest summed weight but one user; item 0 has three users.
    user_items = sp.csr_matrix(
        np.array(
            [[1, 1, 9, 0], [1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]],
            dtype=np.float32,
        )
    )
    model = PopularityRecommender().fit(user_items)
    np.testing.assert_array_equal(model.item_popularity, [3, 2, 1, 1])
    ids, scores = model.recommend(3, k=3)
    np.testing.assert_array_equal(ids, [0, 1, 2])
    np.testing.assert_array_equal(scores, [3, 2, 1])
    np.testing.assert_array_equal(model.similar_items(0, k=2)[0], [1, 2])


def test_module_import_is_lazy_and_training_uses_one_blas_thread():
    # A fresh interpreter: implicit warns once per process about a multi-threaded BLAS.
    code = textwrap.dedent(
        """
        import sys, warnings
        import scipy.sparse as sp
        import recommendations.recommenders as r
        assert "implicit" not in sys.modules, "importing the module imported implicit"
        user_items = sp.random(50, 30, density=0.2, format="csr", random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            r.ALSRecommender(factors=4, iterations=2).fit(user_items)
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "", "OPENBLAS_NUM_THREADS": "4", "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
