"""Loaders of public data sets and of interaction CSVs."""

import numpy as np
import pytest

from recommendations.datasets import (
    Interactions,
    build_user_items,
    load_insteval,
    load_interactions_csv,
    load_movielens_100k,
    write_interactions_csv,
)


def write(tmp_path, text):
    path = tmp_path / "events.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_with_all_columns(tmp_path):
    path = write(
        tmp_path,
        "user,item,weight,timestamp\n"
        "u1,a,2,100\n"
        "u1,a,3,2024-01-01T00:00:00+00:00\n"
        "u2,b,1.5,2024-01-01\n",
    )
    interactions = load_interactions_csv(path)
    assert len(interactions) == 3
    np.testing.assert_array_equal(interactions.timestamps, [100.0, 1704067200.0, 1704067200.0])
    user_items, users, items = interactions.to_user_items()
    assert list(users) == ["u1", "u2"] and list(items) == ["a", "b"]
    # Repeated (user, item) events add up.
    np.testing.assert_array_equal(user_items.toarray(), [[5.0, 0.0], [0.0, 1.5]])
    np.testing.assert_array_equal(
        interactions.to_user_items(binary=True)[0].toarray(), [[1, 0], [0, 1]]
    )


def test_csv_optional_columns_default(tmp_path):
    interactions = load_interactions_csv(write(tmp_path, "item,user,extra\na,u1,x\n"))
    assert interactions.timestamps is None
    np.testing.assert_array_equal(interactions.weights, [1.0])
    assert interactions.user_ids[0] == "u1" and interactions.item_ids[0] == "a"


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty"),
        ("user,item\n", "no interactions"),
        ("user,weight\nu1,1\n", "missing column.*item"),
        ("user,item,weight\nu1,a,heavy\n", "line 2: weight 'heavy'"),
        ("user,item,weight\nu1,a,-1\n", "not a positive number"),
        ("user,item,weight\nu1,a,nan\n", "not a positive number"),
        ("user,item,timestamp\nu1,a,yesterday\n", "line 2: timestamp 'yesterday'"),
        ("user,item\nu1,a\n,b\n", "line 3: empty user"),
        ("user,item,weight\nu1,a\n", "line 2: expected 3 fields"),
    ],
)
def test_csv_errors_are_clear(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        load_interactions_csv(write(tmp_path, text))


def test_csv_round_trip(tmp_path):
    original = Interactions(
        user_ids=np.array(["1", "2"]),
        item_ids=np.array(["x", "y"]),
        weights=np.array([1.0, 4.0], np.float32),
        timestamps=np.array([10.0, 20.0]),
    )
    loaded = load_interactions_csv(write_interactions_csv(original, tmp_path / "sub" / "e.csv"))
    for name in ("user_ids", "item_ids", "weights", "timestamps"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(original, name))


def test_build_user_items_sums_duplicates():
    matrix = build_user_items([0, 0, 1], [2, 2, 0], [1.0, 2.0, 1.0])
    assert matrix.shape == (2, 3) and matrix.nnz == 2
    assert matrix[0, 2] == 3.0


def test_movielens_100k_from_recbole():
    data = load_movielens_100k()
    assert len(data) == 100_000
    assert (data.n_users, data.n_items) == (943, 1682)
    assert set(np.unique(data.weights)) == {1, 2, 3, 4, 5}
    assert data.timestamps.min() > 8e8


def test_insteval_from_pydataset():
    data = load_insteval()
    assert len(data) == 73_421
    assert (data.n_users, data.n_items) == (2972, 1128)
    assert set(np.unique(data.timestamps)) == {-6, -5, -4, -3, -2, -1}
