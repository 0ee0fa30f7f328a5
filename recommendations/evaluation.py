r"""Offline evaluation of recommenders: splits, ranking metrics, model versus popularity.

Shared by the ``evaluate`` management command, the tests and the notebooks, so that a
figure quoted anywhere means the same thing.

Protocol
--------
A recommender is fitted on ``train`` and asked for ``k`` items per user with the user's
training items filtered out; its lists are scored against the user's ``test`` items
(every nonzero of ``test`` is relevant, whatever its weight). Users with no test item, or
with no training item (nothing to personalise from, e.g. newcomers in a time split), are
left out of the averages. Scores are means over the remaining users.

Metrics (binary relevance, ``rel_i`` = 1 when the item at rank ``i`` is relevant, ``R`` =
the user's relevant items)
-------------------------------------------------------------------------------------------
precision@k
    :math:`\frac{1}{k}\sum_{i=1}^{k} rel_i`: hits over ``k``, even when the user has fewer
    than ``k`` relevant items (so a perfect score can be below 1).
recall@k
    :math:`\frac{1}{|R|}\sum_{i=1}^{k} rel_i`: hits over all relevant items, the textbook
    definition (not ``min(k, |R|)``), so users with many test items cap below 1.
MAP@k
    Mean over users of :math:`AP@k = \frac{1}{\min(k, |R|)}\sum_{i=1}^{k} P@i \cdot rel_i`.
NDCG@k
    :math:`DCG@k / IDCG@k` with :math:`DCG@k = \sum_{i=1}^{k} rel_i / \log_2(i + 1)` and
    IDCG@k the DCG of ``min(k, |R|)`` hits at the top.
coverage
    Distinct items recommended to the evaluated users, over the catalogue size
    ``n_items``: how much of the catalogue the model ever shows.

Splits
------
:func:`train_test_split_per_user` holds out a random share of each user's items (the
usual "75/25" protocol of published MovieLens figures); :func:`time_split` holds out
the latest events, which is closer to production but harder.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = [
    "train_test_split_per_user",
    "time_split",
    "ranking_metrics",
    "precision_at_k",
    "recall_at_k",
    "map_at_k",
    "ndcg_at_k",
    "catalogue_coverage",
    "evaluate",
    "compare_with_popularity",
]


def _canonical_csr(matrix):
    matrix = sp.csr_matrix(matrix)
    matrix.sum_duplicates()
    matrix.eliminate_zeros()
    matrix.sort_indices()
    return matrix


def train_test_split_per_user(user_items, test_fraction=0.25, seed=0):
    """Hold out a random ``test_fraction`` of every user's items.

    Each user with ``n`` items gives ``round(test_fraction * n)`` of them (halves
    rounded up) to ``test``, but always keeps at least one in ``train``: a user with a
    single item is train-only.

    Parameters
    ----------
    user_items : sparse matrix, shape (n_users, n_items)
    test_fraction : float
        In (0, 1).
    seed : int
        Seed of the shuffle; the same seed gives the same split.

    Returns
    -------
    train, test : csr_matrix, shape (n_users, n_items)
        Disjoint, summing to ``user_items``; values (weights) kept.
    """
    if not 0 < test_fraction < 1:
        raise ValueError("test_fraction must be between 0 and 1 (exclusive).")
    user_items = _canonical_csr(user_items)
    n_users = user_items.shape[0]
    counts = np.diff(user_items.indptr)
    rows = np.repeat(np.arange(n_users), counts)
    rng = np.random.default_rng(seed)
    # Shuffle within each row: sort by (row, random key); entries stay grouped by row.
    order = np.lexsort((rng.random(user_items.nnz), rows))
    rank_in_row = np.empty(user_items.nnz, dtype=np.int64)
    rank_in_row[order] = np.arange(user_items.nnz) - user_items.indptr[rows[order]]
    n_test = np.minimum(np.floor(test_fraction * counts + 0.5), np.maximum(counts - 1, 0))
    is_test = rank_in_row < n_test[rows]
    return _split_by_mask(user_items, rows, is_test)


def _split_by_mask(user_items, rows, is_test):
    def part(mask):
        return _canonical_csr(
            sp.csr_matrix(
                (user_items.data[mask], (rows[mask], user_items.indices[mask])),
                shape=user_items.shape,
            )
        )

    return part(~is_test), part(is_test)


def time_split(interactions, test_fraction=0.25, cutoff=None, binary=False):
    """Hold out the latest events: everything at or after a cutoff time goes to test.

    Parameters
    ----------
    interactions : recommendations.datasets.Interactions
        Any object with ``encode()``, ``weights`` and ``timestamps`` like it; the
        timestamps must be present.
    test_fraction : float
        Share of events (by count) after the cutoff, used when ``cutoff`` is None: the
        cutoff becomes the ``1 - test_fraction`` quantile of the timestamps. With tied
        timestamps the share is approximate.
    cutoff : float, optional
        Explicit cutoff, in the timestamps' unit.
    binary : bool
        Set every kept (user, item) entry to 1.0.

    Returns
    -------
    train, test : csr_matrix, shape (n_users, n_items)
        Rows and columns in the order of ``interactions.to_user_items()``. A pair seen in
        train is removed from test: evaluation filters training items, so it could never
        be a hit.
    """
    if interactions.timestamps is None:
        raise ValueError("time_split needs timestamps; these interactions have none.")
    timestamps = np.asarray(interactions.timestamps, dtype=np.float64)
    if cutoff is None:
        if not 0 < test_fraction < 1:
            raise ValueError("test_fraction must be between 0 and 1 (exclusive).")
        cutoff = np.quantile(timestamps, 1 - test_fraction, method="higher")
    user_index, item_index, users, items = interactions.encode()
    shape = (len(users), len(items))
    weights = np.asarray(interactions.weights, dtype=np.float32)
    is_test = timestamps >= cutoff

    def build(mask):
        return _canonical_csr(
            sp.csr_matrix((weights[mask], (user_index[mask], item_index[mask])), shape=shape)
        )

    train, test = build(~is_test), build(is_test)
    seen = train.copy()
    seen.data[:] = 1.0
    test = _canonical_csr(test - test.multiply(seen))
    if binary:
        train.data[:] = 1.0
        test.data[:] = 1.0
    return train, test


def _as_relevance(relevant, n_users):
    """csr (n_users, n_items) of relevant items from a csr or a list of id collections."""
    if sp.issparse(relevant):
        return _canonical_csr(relevant)
    rows = np.repeat(np.arange(len(relevant)), [len(r) for r in relevant])
    cols = np.fromiter((int(i) for r in relevant for i in r), dtype=np.int64, count=len(rows))
    n_items = int(cols.max()) + 1 if len(cols) else 1
    return _canonical_csr(
        sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_users, n_items))
    )


def _hits(recommended, relevant, k):
    """Boolean (n_users, k): is the item at each rank relevant to that user."""
    recommended = np.asarray(recommended, dtype=np.int64)
    if recommended.ndim != 2:
        raise ValueError("recommended must be a 2-D array of item ids, one row per user.")
    if recommended.shape[0] != relevant.shape[0]:
        raise ValueError("recommended and relevant must have one row per user each.")
    if recommended.shape[1] < k:  # a catalogue smaller than k: pad with "nothing"
        pad = np.full((recommended.shape[0], k - recommended.shape[1]), -1, dtype=np.int64)
        recommended = np.hstack([recommended, pad])
    recommended = recommended[:, :k]
    n_cols = max(relevant.shape[1], int(recommended.max(initial=-1)) + 1)
    # Encode (user, item) pairs as one integer; the relevant keys come out sorted from a
    # canonical csr, so membership is a binary search.
    relevant_rows = np.repeat(
        np.arange(relevant.shape[0], dtype=np.int64), np.diff(relevant.indptr)
    )
    relevant_keys = relevant_rows * n_cols + relevant.indices
    keys = np.arange(recommended.shape[0], dtype=np.int64)[:, None] * n_cols + recommended
    if not len(relevant_keys):
        return np.zeros(recommended.shape, dtype=bool)
    pos = np.clip(np.searchsorted(relevant_keys, keys), 0, len(relevant_keys) - 1)
    return (relevant_keys[pos] == keys) & (recommended >= 0)


def ranking_metrics(recommended, relevant, k=10, per_user=False):
    """Precision, recall, MAP and NDCG at ``k`` in one pass (definitions: module docstring).

    Parameters
    ----------
    recommended : array_like of int, shape (n_users, >= k)
        Item ids best first; ``-1`` marks an empty slot. Extra columns are ignored.
    relevant : csr_matrix, shape (n_users, n_items), or sequence of n_users id collections
        The held-out items of each user.
    k : int
    per_user : bool
        Return per-user arrays (NaN for users without relevant items) instead of means.

    Returns
    -------
    dict
        ``precision``, ``recall``, ``map``, ``ndcg`` and ``users`` (users averaged over).
    """
    recommended = np.asarray(recommended)
    relevant = _as_relevance(relevant, recommended.shape[0])
    hits = _hits(recommended, relevant, k).astype(np.float64)
    n_relevant = np.diff(relevant.indptr)
    has_relevant = n_relevant > 0
    n_hits = hits.sum(axis=1)
    ranks = np.arange(1, k + 1)
    discounts = 1.0 / np.log2(ranks + 1)
    ideal = np.concatenate([[0.0], np.cumsum(discounts)])
    capped = np.minimum(n_relevant, k)
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = {
            "precision": n_hits / k,
            "recall": n_hits / n_relevant,
            "map": (np.cumsum(hits, axis=1) / ranks * hits).sum(axis=1) / capped,
            "ndcg": (hits @ discounts) / ideal[capped],
        }
    if per_user:
        result = {name: np.where(has_relevant, value, np.nan) for name, value in scores.items()}
    else:
        result = {
            name: float(value[has_relevant].mean()) if has_relevant.any() else 0.0
            for name, value in scores.items()
        }
    result["users"] = int(has_relevant.sum())
    return result


def precision_at_k(recommended, relevant, k=10):
    """Mean precision@k: hits / k."""
    return ranking_metrics(recommended, relevant, k)["precision"]


def recall_at_k(recommended, relevant, k=10):
    """Mean recall@k: hits / |relevant|."""
    return ranking_metrics(recommended, relevant, k)["recall"]


def map_at_k(recommended, relevant, k=10):
    """Mean average precision@k, each AP normalised by min(k, |relevant|)."""
    return ranking_metrics(recommended, relevant, k)["map"]


def ndcg_at_k(recommended, relevant, k=10):
    """Mean NDCG@k with binary gains and a log2 discount."""
    return ranking_metrics(recommended, relevant, k)["ndcg"]


def catalogue_coverage(recommended, n_items):
    """Distinct items in ``recommended`` (``-1`` ignored) over ``n_items``."""
    recommended = np.asarray(recommended)
    if n_items <= 0:
        raise ValueError("n_items must be positive.")
    return float(len(np.unique(recommended[recommended >= 0])) / n_items)


def intra_list_diversity(recommended, categories):
    """Mean share of pairs in a list whose products are of different categories.

    Parameters
    ----------
    recommended : ndarray of shape (n_users, k)
        Item indices, ``-1`` for empty slots (ignored).
    categories : ndarray of shape (n_items,)
        Category of each item.

    Returns
    -------
    float
        0 when every list holds one category, 1 when no two items share one; lists
        with fewer than two items are left out.
    """
    values = []
    for row in np.asarray(recommended):
        cats = [categories[c] for c in row if c >= 0]
        if len(cats) < 2:
            continue
        same = sum(a == b for i, a in enumerate(cats) for b in cats[i + 1 :])
        pairs = len(cats) * (len(cats) - 1) / 2
        values.append(1.0 - same / pairs)
    return float(np.mean(values)) if values else 0.0


def evaluate(recommender, train, test, k=10, fit=True):
    """Fit ``recommender`` on ``train`` and score its top-``k`` lists against ``test``.

    Parameters
    ----------
    recommender : recommendations.recommenders.Recommender
    train, test : sparse matrix, shape (n_users, n_items)
        From one of the split functions of this module.
    k : int
    fit : bool
        Fit on ``train`` first; pass False for a recommender already fitted on ``train``
        (it must be: its stored rows are the training items filtered out).

    Returns
    -------
    dict
        ``precision_at_{k}``, ``recall_at_{k}``, ``map_at_{k}``, ``ndcg_at_{k}``,
        ``coverage``, all floats.
    """
    train = _canonical_csr(train)
    test = _canonical_csr(test)
    if train.shape != test.shape:
        raise ValueError(f"train {train.shape} and test {test.shape} must have the same shape.")
    if fit:
        recommender.fit(train)
    elif recommender.user_items.shape != train.shape:
        raise ValueError("the recommender was not fitted on a matrix of train's shape.")
    users = np.flatnonzero((np.diff(test.indptr) > 0) & (np.diff(train.indptr) > 0))
    if not len(users):
        raise ValueError("no user has both training and test items: nothing to evaluate.")
    ids, _ = recommender.recommend(users, k=k, filter_already_liked=True)
    ids = np.atleast_2d(ids)
    metrics = ranking_metrics(ids, test[users], k)
    return {
        f"precision_at_{k}": metrics["precision"],
        f"recall_at_{k}": metrics["recall"],
        f"map_at_{k}": metrics["map"],
        f"ndcg_at_{k}": metrics["ndcg"],
        "coverage": catalogue_coverage(ids, train.shape[1]),
    }


def compare_with_popularity(recommender, train, test, k=10, fit=True):
    """Evaluate ``recommender`` and the popularity baseline under the same protocol.

    Returns
    -------
    dict
        ``{"model": evaluate(recommender, ...), "popularity": evaluate(popularity, ...)}``.
    """
    from .recommenders import PopularityRecommender

    return {
        "model": evaluate(recommender, train, test, k=k, fit=fit),
        "popularity": evaluate(PopularityRecommender(), train, test, k=k, fit=True),
    }
