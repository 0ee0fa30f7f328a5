"""Retrieval quality metrics for visual search (pure numpy).

Two questions decide whether an encoder is good enough for "shop the look":

* *Category precision* -- do the neighbours of a query photo show the same kind of product?
  Measured with :func:`precision_at_k`, :func:`map_at_k` and :func:`per_category`, using the
  product category as the relevance label.
* *Robustness* -- does a shopper's photo of a catalogue product (cropped, tilted, badly lit,
  recompressed) still find that exact product? Measured with :func:`robust_hit_at_k` on
  catalogue images passed through :func:`visualsearch.distortions.distort`.

Every function takes the retrieval result as a ``(n_queries, k)`` array of labels or ids of the
ranked neighbours, so the metrics are independent of how the search was done (pgvector, faiss
or the exact :func:`search` below).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "map_at_k",
    "per_category",
    "precision_at_k",
    "robust_hit_at_k",
    "search",
]


def _relevance(query_labels, result_labels, k):
    """Return the ``(n_queries, k)`` boolean matrix "neighbour j has the query's label"."""
    query_labels = np.asarray(query_labels)
    result_labels = np.asarray(result_labels)
    if result_labels.ndim != 2:
        raise ValueError(
            f"result_labels must be 2-D (n_queries, k), got shape {result_labels.shape}."
        )
    if query_labels.shape != (result_labels.shape[0],):
        raise ValueError(
            f"query_labels must have shape ({result_labels.shape[0]},), got {query_labels.shape}."
        )
    if k is None:
        k = result_labels.shape[1]
    if not 1 <= k <= result_labels.shape[1]:
        raise ValueError(f"k must be between 1 and {result_labels.shape[1]}, got {k}.")
    return result_labels[:, :k] == query_labels[:, None]


def precision_at_k(query_labels, result_labels, k=None) -> float:
    """Mean fraction of the top ``k`` neighbours that share the query's label.

    Parameters
    ----------
    query_labels : array_like, shape (n_queries,)
        Category of each query.
    result_labels : array_like, shape (n_queries, >= k)
        Categories of the ranked neighbours of each query, best first.
    k : int, optional
        Cut-off; defaults to ``result_labels.shape[1]``.

    Returns
    -------
    float
        Precision@k averaged over queries, in ``[0, 1]``.
    """
    rel = _relevance(query_labels, result_labels, k)
    if rel.shape[0] == 0:
        return float("nan")
    return float(rel.mean())


def map_at_k(query_labels, result_labels, k=None, n_relevant=None) -> float:
    """Mean average precision at ``k``.

    Unlike precision@k, AP rewards placing relevant items first, which is what a shopper sees
    on a results page.

    Parameters
    ----------
    query_labels : array_like, shape (n_queries,)
    result_labels : array_like, shape (n_queries, >= k)
    k : int, optional
        Cut-off; defaults to ``result_labels.shape[1]``.
    n_relevant : int or array_like of shape (n_queries,), optional
        Number of relevant items in the whole catalogue for each query (e.g. the size of its
        category). AP@k is normalised by ``min(k, n_relevant)``, the best achievable number of
        hits. If omitted, the number of hits retrieved in the top ``k`` is used instead (so a
        query with one hit at rank 1 scores 1.0), the usual choice when the catalogue's
        relevant set is unknown.

    Returns
    -------
    float
        MAP@k in ``[0, 1]``; a query without any hit contributes 0.
    """
    rel = _relevance(query_labels, result_labels, k).astype(np.float64)
    n, k = rel.shape
    if n == 0:
        return float("nan")
    ranks = np.arange(1, k + 1, dtype=np.float64)
    precision_at_rank = np.cumsum(rel, axis=1) / ranks
    summed = (precision_at_rank * rel).sum(axis=1)
    if n_relevant is None:
        denom = rel.sum(axis=1)
    else:
        denom = np.minimum(np.broadcast_to(np.asarray(n_relevant, dtype=np.float64), (n,)), k)
        # An understated relevant set (more hits than "relevant" items) must not push AP > 1.
        denom = np.maximum(denom, rel.sum(axis=1))
    ap = np.divide(summed, denom, out=np.zeros(n), where=denom > 0)
    return float(ap.mean())


def per_category(query_labels, result_labels, k=None, n_relevant=None) -> dict:
    """Precision@k and MAP@k for each query category separately.

    An overall average hides categories where search is useless (in Fashion-MNIST, shirts are
    confused with T-shirts and pullovers), so reports show this breakdown.

    Parameters
    ----------
    query_labels : array_like, shape (n_queries,)
    result_labels : array_like, shape (n_queries, >= k)
    k : int, optional
    n_relevant : int or array_like of shape (n_queries,), optional
        As in :func:`map_at_k`.

    Returns
    -------
    dict
        ``{label: {"n": int, "precision": float, "map": float}}`` in sorted label order.
    """
    query_labels = np.asarray(query_labels)
    result_labels = np.asarray(result_labels)
    rel = _relevance(query_labels, result_labels, k)
    k = rel.shape[1]
    if n_relevant is not None:
        n_relevant = np.broadcast_to(np.asarray(n_relevant), query_labels.shape)
    out = {}
    for label in np.unique(query_labels):
        mask = query_labels == label
        key = label.item() if hasattr(label, "item") else label
        out[key] = {
            "n": int(mask.sum()),
            "precision": float(rel[mask].mean()),
            "map": map_at_k(
                query_labels[mask],
                result_labels[mask, :k],
                n_relevant=None if n_relevant is None else n_relevant[mask],
            ),
        }
    return out


def robust_hit_at_k(query_ids, result_ids, k=None) -> float:
    """Fraction of queries whose own product appears among the top ``k`` neighbours.

    Used with distorted copies of catalogue images as queries: ``query_ids[i]`` is the id of
    the catalogue product that query ``i`` was made from.

    Parameters
    ----------
    query_ids : array_like, shape (n_queries,)
        Id of the original product of each query.
    result_ids : array_like, shape (n_queries, >= k)
        Ids of the ranked neighbours, best first.
    k : int, optional
        Cut-off; defaults to ``result_ids.shape[1]``.

    Returns
    -------
    float
        Hit rate in ``[0, 1]``.
    """
    hits = _relevance(query_ids, result_ids, k)
    if hits.shape[0] == 0:
        return float("nan")
    return float(hits.any(axis=1).mean())


def search(queries, catalogue, k=10, exclude=None):
    """Exact cosine nearest neighbours, for evaluation without a database.

    Parameters
    ----------
    queries : ndarray, shape (n_queries, dim)
        L2-normalised query embeddings.
    catalogue : ndarray, shape (n_items, dim)
        L2-normalised catalogue embeddings.
    k : int
        Number of neighbours.
    exclude : array_like of int, shape (n_queries,), optional
        For each query, a catalogue row to leave out (the query itself when querying the
        catalogue with its own images); ``-1`` excludes nothing.

    Returns
    -------
    indices : ndarray of int64, shape (n_queries, k)
        Catalogue rows, most similar first.
    scores : ndarray of float32, shape (n_queries, k)
        Cosine similarities.
    """
    queries = np.asarray(queries, dtype=np.float32)
    catalogue = np.asarray(catalogue, dtype=np.float32)
    k = min(k, catalogue.shape[0])
    indices = np.empty((queries.shape[0], k), dtype=np.int64)
    scores = np.empty((queries.shape[0], k), dtype=np.float32)
    # Chunks bound memory at chunk x n_items floats for large catalogues.
    chunk = 1024
    for start in range(0, queries.shape[0], chunk):
        sims = queries[start : start + chunk] @ catalogue.T
        if exclude is not None:
            ex = np.asarray(exclude)[start : start + chunk]
            rows = np.nonzero(ex >= 0)[0]
            sims[rows, ex[rows]] = -np.inf
        part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        part_scores = np.take_along_axis(sims, part, axis=1)
        order = np.argsort(-part_scores, axis=1, kind="stable")
        indices[start : start + chunk] = np.take_along_axis(part, order, axis=1)
        scores[start : start + chunk] = np.take_along_axis(part_scores, order, axis=1)
    return indices, scores
