"""Collaborative scores for products nobody has interacted with yet.

ALS learns a vector of factors for every product with events; a product added since has
none, so the "collaborative" and "affinity" components have nothing to say about it and
a blend could only rank it by its looks. :class:`ColdStartMap` learns, when the model is
trained, a linear map from what the shop knows of every product from the start -- its
image embedding and its category -- to the factors ALS gave it (ridge regression, the
penalty chosen by generalised cross-validation; Golub, Heath & Wahba 1979). A new
product's predicted factors then score it for a shopper (their factors' dot product,
as ALS scores a known product) and against the shopper's recent products (the cosine of
factors, as ALS's similar items), so that taste learnt from shoppers reaches products no
shopper has touched yet.

The map is stored in the model's artefact beside its factors
(:func:`~recommendations.services.training.write_artifact`) and read once per artefact
(:func:`cold_start_of`); the offline evaluation fits it the same way on the model it
fits as of its cutoff.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lookalike.keys import native

from .artefacts import ArtefactPart, read_part

__all__ = [
    "ColdStartMap",
    "cold_start_of",
    "fit_cold_start",
    "fit_for_items",
    "read_cold_start",
]

# Arrays of the map in a model's artefact (``.npz``).
_COEF = "lookalike_cold_coef"
_INTERCEPT = "lookalike_cold_intercept"
_CATEGORIES = "lookalike_cold_categories"
_CATEGORY_SCALE = "lookalike_cold_category_scale"

#: Ridge penalties tried, relative to the mean eigenvalue of the features' Gram matrix.
_ALPHAS = np.geomspace(1e-3, 10.0, 13)
#: Weights of the category one-hot block relative to the unit-norm embedding.
_CATEGORY_SCALES = (0.0, 0.25, 0.5, 1.0)


def _category_key(value):
    return "" if value is None else str(value)


@dataclass(eq=False)
class ColdStartMap:
    """A linear map from a product's content to ALS item factors.

    Attributes
    ----------
    coef : ndarray of float64, shape (dim + len(categories), factors)
    intercept : ndarray of float64, shape (factors,)
    categories : ndarray of str
        The category keys seen when fitting (as strings), in one-hot order; a category
        not among them has no one-hot feature.
    category_scale : float
        Value of a product's one-hot category feature.
    """

    coef: np.ndarray
    intercept: np.ndarray
    categories: np.ndarray
    category_scale: float

    def __post_init__(self):
        self._column = {key: i for i, key in enumerate(self.categories.tolist())}

    @property
    def dim(self):
        """Length of the embeddings the map takes."""
        return self.coef.shape[0] - len(self.categories)

    def features(self, embeddings, categories):
        """The content features of products: ``[embedding, scaled one-hot category]``."""
        embeddings = np.asarray(embeddings, dtype=np.float64).reshape(-1, self.dim)
        onehot = np.zeros((len(embeddings), len(self.categories)))
        for i, category in enumerate(categories):
            column = self._column.get(_category_key(category))
            if column is not None:
                onehot[i, column] = self.category_scale
        return np.hstack([embeddings, onehot])

    def factors(self, embeddings, categories):
        """Predicted item factors, shape ``(n, factors)``; rows for products without an
        embedding (all zeros) are predicted from their category alone."""
        return self.features(embeddings, categories) @ self.coef + self.intercept

    def to_arrays(self):
        """The arrays stored in a model's artefact."""
        return {
            _COEF: self.coef.astype(np.float32),
            _INTERCEPT: self.intercept.astype(np.float32),
            _CATEGORIES: self.categories.astype(str),
            _CATEGORY_SCALE: np.array(self.category_scale),
        }

    @classmethod
    def from_arrays(cls, arrays):
        """The map stored in ``arrays`` (an opened ``.npz``), or ``None`` when it holds none."""
        if _COEF not in arrays:
            return None
        return cls(
            coef=np.asarray(arrays[_COEF], dtype=np.float64),
            intercept=np.asarray(arrays[_INTERCEPT], dtype=np.float64),
            categories=np.asarray(arrays[_CATEGORIES]).astype(str),
            category_scale=float(arrays[_CATEGORY_SCALE]),
        )


def _gram_spectrum(x):
    """The eigenvalues and eigenvectors of ``x^T x``, from that d x d matrix."""
    eigenvalues, vectors = np.linalg.eigh(x.T @ x)
    return np.maximum(eigenvalues, 0.0), vectors


def _row_spectrum(x):
    """The eigenvalues of ``x^T x`` that can be nonzero, at most one per row of ``x``, and
    their eigenvectors, from the n x n matrix ``x x^T``: its eigenvectors ``u`` give those
    of ``x^T x`` as ``x^T u / sqrt(eigenvalue)``. (The zero ones add nothing to the ridge:
    ``x^T y`` has no part along them; nor do numerically zero ones, dropped here.)"""
    eigenvalues, left = np.linalg.eigh(x @ x.T)
    keep = eigenvalues > eigenvalues.max(initial=0.0) * 1e-12
    eigenvalues = eigenvalues[keep]
    return eigenvalues, (x.T @ left[:, keep]) / np.sqrt(eigenvalues)


def _spectrum(x):
    """The spectrum the ridge path is read from: a shop with fewer products than features
    (1,280 and a column per category) decomposes its products' rows, not the d x d Gram
    matrix, whose cost does not shrink with the catalogue (four of them took 30 s of a
    170-product shop's training on a busy machine; 1.6 s against 0.05 s for one fit of
    170 x 1,317 on one core, quiet)."""
    rows, features = x.shape
    # The row route does one more product (x^T u): it pays below about 3/4 as many rows.
    return _row_spectrum(x) if 4 * rows < 3 * features else _gram_spectrum(x)


def _gcv_fit(x, y):
    """Ridge of ``y`` on ``x`` (both centred) at the penalty of least generalised
    cross-validation error: ``(coef, gcv error)``."""
    n = len(x)
    eigenvalues, vectors = _spectrum(x)
    projected = vectors.T @ (x.T @ y)  # B = V^T X^T Y
    total = float((y * y).sum())
    # The mean of all d eigenvalues (the trace over d), zeros left out of the spectrum too.
    scale = max(float(eigenvalues.sum()) / x.shape[1], 1e-12)
    best = None
    for alpha in _ALPHAS * scale:
        shrink = 1.0 / (eigenvalues + alpha)
        squared = (projected * projected).sum(axis=1)
        residual = total - 2 * (squared * shrink).sum() + (squared * eigenvalues * shrink**2).sum()
        dof = float((eigenvalues * shrink).sum())
        error = max(residual, 0.0) / max(n - dof, 1.0) ** 2
        if best is None or error < best[0]:
            best = (error, alpha)
    coef = vectors @ (projected / (eigenvalues + best[1])[:, None])
    return coef, best[0]


def fit_cold_start(item_factors, embeddings, categories):
    """Fit a :class:`ColdStartMap` on the products the model knows.

    Parameters
    ----------
    item_factors : ndarray, shape (n_items, factors)
        ALS item factors.
    embeddings : ndarray, shape (n_items, dim)
        L2-normalised image embeddings of the same products; rows of zeros for products
        without one, which are left out of the fit.
    categories : sequence, shape (n_items,)
        Category keys of the same products.

    Returns
    -------
    ColdStartMap or None
        ``None`` when fewer than two products have an embedding.
    """
    embeddings = np.asarray(embeddings, dtype=np.float64)
    targets = np.asarray(item_factors, dtype=np.float64)
    has = np.linalg.norm(embeddings, axis=1) > 0
    if has.sum() < 2:
        return None
    keys = np.asarray([_category_key(c) for c in categories], dtype=str)
    known = np.unique(keys[has])
    best = None
    for scale in _CATEGORY_SCALES:
        candidate = ColdStartMap(
            coef=np.zeros((embeddings.shape[1] + len(known), targets.shape[1])),
            intercept=np.zeros(targets.shape[1]),
            categories=known,
            category_scale=scale,
        )
        x = candidate.features(embeddings[has], keys[has])
        x_mean, y_mean = x.mean(axis=0), targets[has].mean(axis=0)
        coef, error = _gcv_fit(x - x_mean, targets[has] - y_mean)
        if best is None or error < best[0]:
            candidate.coef, candidate.intercept = coef, y_mean - x_mean @ coef
            best = (error, candidate)
    return best[1]


def fit_for_items(item_factors, item_ids):
    """Fit the map of a model trained on ``item_ids`` from the catalogue as it is now: the
    configured encoder's embeddings and the adapter's category keys (what training stores
    in the artefact); ``None`` when too few of them have an embedding."""
    from lookalike.catalogue import get_adapter
    from visualsearch.services.vectors import load_vectors

    ids = [native(pid) for pid in np.asarray(item_ids).tolist()]
    vectors = load_vectors(ids)
    if len(vectors) < 2:
        return None
    dim = len(next(iter(vectors.values())))
    embeddings = np.zeros((len(ids), dim))
    for i, pid in enumerate(ids):
        if pid in vectors:
            v = np.asarray(vectors[pid], dtype=np.float64)
            norm = np.linalg.norm(v)
            if norm > 0:
                embeddings[i] = v / norm
    adapter = get_adapter()
    queryset = adapter.annotate(adapter.get_queryset().filter(pk__in=ids))
    category = {p.pk: adapter.get_category_key(p) for p in queryset.iterator(chunk_size=2000)}
    return fit_cold_start(item_factors, embeddings, [category.get(pid) for pid in ids])


def read_cold_start(path):
    """The map stored in the artefact at ``path`` (relative to
    ``RECOMMENDATIONS_ARTIFACT_DIR`` unless absolute), or ``None`` when it holds none."""
    return read_part(path, ColdStartMap.from_arrays)


_stored = ArtefactPart("cold_start", ColdStartMap.from_arrays)


def cold_start_of(model):
    """The :class:`ColdStartMap` of an :class:`~recommendations.services.serving.ActiveModel`:
    the one it carries (``cold_start``, set by the offline evaluation) or the one stored in
    its artefact, read once per artefact; ``None`` when it has none (a model trained before
    maps were stored, or a catalogue without embeddings)."""
    return _stored.of(model)
