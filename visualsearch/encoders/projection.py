r"""Linear maps, learned on the shop's own catalogue, that make embeddings fit for search.

ImageNet features know nothing about which differences matter in a given shop. Two maps, both
fitted in closed form on catalogue images in seconds, correct the two ways they fail.

**Category directions (the stored vectors).** A T-shirt and a shirt may be closer than two
T-shirts photographed differently. A ridge least-squares map from features to the catalogue's
category labels finds the few directions that separate the shop's categories. Searching in
those directions alone would make every product of a category look alike and lose the exact
product a shopper photographed, so the embedding keeps the features and only *adds* a
weighted copy of the category directions:

.. math::

    e = \frac{S f}{\lVert S f \rVert}, \qquad S^\top S = I + \gamma\, W W^\top

with :math:`W` (dim x n_classes) the least-squares map. Then
:math:`(S f)\cdot(S f') = f\cdot f' + \gamma\,(W^\top f)\cdot(W^\top f')`: the cosine
plus ``gamma`` times the similarity of predicted categories, i.e. the concatenation
``[f, sqrt(gamma) W^T f]`` written in the original dimension, so the stored vectors keep their
size. :math:`S = I + U\,\mathrm{diag}(\sqrt{1 + \gamma\sigma^2} - 1)\,U^\top` from the thin
SVD :math:`W = U \Sigma V^\top`, so applying it costs two thin matrix products, and it is
invertible: the raw features can be recovered from a stored vector.

**Invariance (re-ranking shopper photos).** A shopper's photo of a product differs from its
catalogue photo by framing, tilt, light and recompression, and in raw features those changes
move a vector as far as the difference between two similar products does. Given pairs of
(catalogue photo, the same photo distorted as a shopper's photo would be), the covariance
:math:`C_S` of the pair differences holds the directions in which such photos wander;
whitening with it,

.. math::

    f \mapsto \frac{(C_S + \lambda I)^{-1/2} (f - \mu)}{\lVert \cdot \rVert},

shrinks those directions and stretches the ones that stay put, so that the same product ranks
first again (the learned whitening of Radenovic, Tolias and Chum, TPAMI 2018); a category map
as above, fitted on whitened features, follows. The shrinkage :math:`\lambda`, relative to the
mean eigenvalue, keeps the inverse stable.

The whitened space is not stored: it flattens distances (for a query from another category,
mean distance over 10th-nearest fell from 1.35 to 1.15 on the demo catalogue), and HNSW walks
under a filter far from the query lost recall@10 at 100,000 vectors (0.98 to 0.85). So the
index keeps the category map, whose contrast graphs navigate well, and photo search re-ranks
its top candidates by the whitened similarity (:meth:`Projection.rerank_vectors` works from
the stored vectors). On the 6,000-product Fashion-MNIST catalogue, pairs from 1,000 *other*
products and a re-ranking of the top 200 raised the distorted-photo hit@10 from 0.85 to 0.94
while category precision stayed at 0.85-0.86.

**Category prior (photo search).** A multinomial logistic regression from the stored
vectors to the categories (:mod:`.category_prior`), fitted with the maps, tells photo search
how likely each category is to be the photographed product's
(:attr:`Projection.category_prior`). It does not change the stored vectors or the digest.

Both maps are fitted only on catalogue images and labels (never on query or test images),
stored as ``.npz`` (loaded with ``allow_pickle=False``) under ``ARTIFACT_DIR`` next to the
encoder, and the maps' digest is part of the encoder's ``weights_hash``: refitting makes
stored embeddings stale.

The module is long because the maps, their closed-form fits and their file format change
together: a field of :class:`Projection` is fitted, saved, loaded and checked here, and
splitting them would spread each change over several modules.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tempfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from lookalike.keys import from_storable, native, to_array, to_storable

from .category_prior import DEFAULT_PRIOR_C, fit_category_prior, log_probabilities, prior_sample

__all__ = ["Projection", "fit", "fit_projection", "fit_whitening", "projection_path"]

#: Weight of the category similarity in the stored vectors, relative to the cosine. On
#: Fashion-MNIST (6,000-item catalogue, GeM features) 0.5 raised category precision@10 from
#: 0.802 to 0.858 while costing the least exact-product recall (gamma 1: 0.861, with more
#: distorted photos lost).
DEFAULT_GAMMA = 0.5
#: The same weight in the whitened re-ranking space. With the top 200 re-ranked, 0.15 gave
#: precision@10 0.85 and distorted-photo hit@10 0.945 (0.3: 0.86 / 0.934; 0: 0.80 / 0.944).
DEFAULT_RERANK_GAMMA = 0.15
#: Ridge penalty, relative to the mean eigenvalue of the feature covariance.
DEFAULT_RIDGE = 1e-2
#: Shrinkage of the pair-difference covariance before whitening, relative to its mean
#: eigenvalue; 0.01 to 1 gave the same hit@10 within 0.01.
DEFAULT_SHRINKAGE = 0.1


def projection_path(artifact_dir, encoder_name: str, raw_hash: str) -> Path:
    """Where the projection for an encoder's raw features lives.

    Keyed by the raw features' hash: a projection fitted on other weights or preprocessing
    is meaningless and must not be picked up.
    """
    return Path(artifact_dir) / f"{encoder_name}-{raw_hash}-projection.npz"


def _category_map(f, basis, scale):
    from .base import l2_normalize

    return l2_normalize(f + ((f @ basis) * scale) @ basis.T)


@dataclass(frozen=True)
class Projection:
    """The catalogue's maps (see the module docstring).

    Attributes
    ----------
    basis : ndarray of float32, shape (dim, rank)
        Orthonormal columns spanning the category directions (``U``) of the stored vectors.
    scale : ndarray of float32, shape (rank,)
        ``sqrt(1 + gamma * sigma**2) - 1`` for each direction.
    mean, whitening : ndarray of float32, shapes (dim,) and (dim, dim), or None
        The invariance whitening, ``f -> normalize((f - mean) @ whitening)``; ``None`` when
        the projection was fitted without pairs (then there is no re-ranking).
    rerank_basis, rerank_scale : ndarray of float32, or None
        The category map applied after the whitening.
    pair_ids : tuple of int
        Products whose photos the whitening was learned from. Not part of :attr:`digest`
        (they do not change the maps); an evaluation of robustness leaves them out.
    category_coef, category_intercept : ndarray of float32, shapes (dim, n_labels) and
        (n_labels,), or None
        The category prior's logistic regression on stored vectors (see
        :meth:`category_log_probabilities`). Not part of :attr:`digest`.
    category_labels : tuple of str
        The categories, in the order of the prior's columns (the main category keys as text).
    """

    basis: np.ndarray
    scale: np.ndarray
    mean: np.ndarray | None = None
    whitening: np.ndarray | None = None
    rerank_basis: np.ndarray | None = None
    rerank_scale: np.ndarray | None = None
    pair_ids: tuple = ()
    category_coef: np.ndarray | None = None
    category_intercept: np.ndarray | None = None
    category_labels: tuple = ()

    _RERANK = ("mean", "whitening", "rerank_basis", "rerank_scale")
    _PRIOR = ("category_coef", "category_intercept")

    def _arrays(self):
        arrays = {"basis": self.basis, "scale": self.scale}
        if self.reranks:
            arrays.update({name: getattr(self, name) for name in self._RERANK})
        return {k: np.ascontiguousarray(a, dtype=np.float32) for k, a in arrays.items()}

    @property
    def reranks(self) -> bool:
        """Whether the projection has the invariance stage that re-ranks photo searches."""
        return self.whitening is not None

    @cached_property
    def digest(self) -> str:
        """The maps' identity (in ``weights_hash``), hashed once: the whitening is large."""
        h = hashlib.sha256()
        for a in self._arrays().values():
            h.update(str(a.shape).encode())
            h.update(a.tobytes())
        return h.hexdigest()[:16]

    def apply(self, features: np.ndarray) -> np.ndarray:
        """Map L2-normalised raw features to the stored vectors.

        Parameters
        ----------
        features : ndarray, shape (n, dim)

        Returns
        -------
        ndarray of float32, shape (n, dim)
            L2-normalised.
        """
        return _category_map(np.asarray(features, dtype=np.float32), self.basis, self.scale)

    def unapply(self, vectors: np.ndarray) -> np.ndarray:
        """The L2-normalised raw features that :meth:`apply` mapped to ``vectors``.

        ``S`` scales the category directions by ``1 + scale`` and leaves the rest alone, so
        its inverse scales them by ``1 / (1 + scale)``; the lost norm is restored by
        normalising, since raw features are unit vectors.
        """
        inverse = 1.0 / (1.0 + self.scale) - 1.0
        return _category_map(np.asarray(vectors, dtype=np.float32), self.basis, inverse)

    @property
    def category_prior(self) -> bool:
        """Whether the projection carries the category prior."""
        return self.category_coef is not None and len(self.category_labels) >= 2

    def category_log_probabilities(self, vectors: np.ndarray) -> np.ndarray:
        """``log p(category | vector)`` for stored or query vectors, ``(n, n_labels)``, the
        columns in the order of :attr:`category_labels`."""
        if not self.category_prior:
            raise ValueError("This projection has no category prior.")
        return log_probabilities(vectors, self.category_coef, self.category_intercept)

    def rerank_vectors(self, vectors: np.ndarray) -> np.ndarray:
        """Stored (or query) vectors mapped into the invariant re-ranking space.

        Raises
        ------
        ValueError
            If the projection has no invariance stage (:attr:`reranks` is false).
        """
        if not self.reranks:
            raise ValueError("This projection was fitted without pairs: it cannot re-rank.")
        raw = self.unapply(vectors)
        return _category_map(
            _whiten(raw, self.mean, self.whitening), self.rerank_basis, self.rerank_scale
        )

    def save(self, path) -> Path:
        """Write atomically (temporary file, then :func:`os.replace`)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.stem + ".", suffix=".tmp.npz", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                # Product keys: int64, or text for UUIDs (no pickles in artefacts).
                np.savez(
                    f,
                    **self._arrays(),
                    **self._prior_arrays(),
                    pair_ids=to_storable(to_array(self.pair_ids)),
                )
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return path

    def _prior_arrays(self):
        if not self.category_prior:
            return {}
        return {
            "category_coef": np.ascontiguousarray(self.category_coef, dtype=np.float32),
            "category_intercept": np.ascontiguousarray(self.category_intercept, np.float32),
            "category_labels": np.asarray(self.category_labels, dtype=str),
        }

    @classmethod
    def load(cls, path) -> Projection:
        texts = ("pair_ids", "category_labels")
        with np.load(path, allow_pickle=False) as data:
            arrays = {
                name: data[name].astype(np.float32) for name in data.files if name not in texts
            }
            pair_ids = data["pair_ids"] if "pair_ids" in data.files else np.zeros(0, np.int64)
            labels = data["category_labels"].tolist() if "category_labels" in data.files else []
        try:
            projection = cls(
                basis=arrays.pop("basis"),
                scale=arrays.pop("scale"),
                **{name: arrays.pop(name, None) for name in (*cls._RERANK, *cls._PRIOR)},
                pair_ids=tuple(native(k) for k in from_storable(pair_ids)),
                category_labels=tuple(str(label) for label in labels),
            )
        except KeyError:
            raise ValueError(f"{path} is not a valid projection file.") from None
        if not projection._prior_consistent():
            # Outside the maps: a damaged prior is dropped, and the stored vectors still apply.
            projection = dataclasses.replace(
                projection, category_coef=None, category_intercept=None, category_labels=()
            )
        if not projection._consistent():
            raise ValueError(f"{path} is not a valid projection file.")
        return projection

    def _prior_consistent(self) -> bool:
        coef, intercept, n = self.category_coef, self.category_intercept, len(self.category_labels)
        if coef is None and intercept is None:
            return True
        return (
            coef is not None
            and intercept is not None
            and coef.shape == (self.basis.shape[0], n)
            and intercept.shape == (n,)
        )

    def _consistent(self) -> bool:
        basis, scale = self.basis, self.scale
        if basis.ndim != 2 or scale.shape != (basis.shape[1],):
            return False
        if not self._prior_consistent():
            return False
        present = [getattr(self, name) is not None for name in self._RERANK]
        if not any(present):
            return True
        if not all(present):
            return False
        dim = basis.shape[0]
        rb, rs = self.rerank_basis, self.rerank_scale
        return (
            self.mean.shape == (dim,)
            and self.whitening.shape == (dim, dim)
            and rb.ndim == 2
            and rb.shape[0] == dim
            and rs.shape == (rb.shape[1],)
        )


def _whiten(features, mean, whitening):
    from .base import l2_normalize

    f = np.asarray(features, dtype=np.float32)
    return l2_normalize((f - mean) @ whitening)


def fit_whitening(anchors, views, shrinkage: float = DEFAULT_SHRINKAGE):
    """Learn the invariance stage from matching pairs.

    Parameters
    ----------
    anchors, views : ndarray, shape (n_pairs, dim)
        Raw L2-normalised features of catalogue photos and of the same photos distorted as a
        shopper's photo would be (:func:`visualsearch.distortions.distort`), row by row.
    shrinkage : float
        Added to the pair-difference covariance's eigenvalues, relative to their mean.

    Returns
    -------
    (mean, whitening) : ndarrays of float32, shapes (dim,) and (dim, dim)
        ``whitening`` is the symmetric ``(C_S + shrinkage * mean_eig * I) ** -1/2``.
    """
    a = np.asarray(anchors, dtype=np.float64)
    v = np.asarray(views, dtype=np.float64)
    if a.ndim != 2 or a.shape != v.shape or len(a) < 2:
        raise ValueError(
            f"anchors and views must be matching (n, dim) arrays with n >= 2, got {a.shape} "
            f"and {v.shape}."
        )
    if shrinkage <= 0:
        raise ValueError("shrinkage must be positive.")
    d = a - v
    eigvals, eigvecs = np.linalg.eigh(d.T @ d / len(d))
    eigvals = np.clip(eigvals, 0.0, None)
    lam = shrinkage * max(eigvals.mean(), 1e-12)
    whitening = (eigvecs * (eigvals + lam) ** -0.5) @ eigvecs.T
    mean = np.concatenate([a, v]).mean(axis=0)
    return mean.astype(np.float32), whitening.astype(np.float32)


def _fit_category(f, labels, gamma, ridge):
    """``(basis, scale)`` of the category map for L2-normalised features ``f``."""
    classes, y = np.unique(labels, return_inverse=True)
    if len(classes) < 2:
        raise ValueError("A projection needs at least two categories.")
    # Centred one-hot targets: the intercept is absorbed, so W only captures directions.
    targets = np.eye(len(classes))[y]
    targets -= targets.mean(axis=0)
    fc = f - f.mean(axis=0)
    cov = fc.T @ fc / len(fc)
    lam = ridge * np.trace(cov) / cov.shape[0]
    w = np.linalg.solve(cov + lam * np.eye(cov.shape[0]), fc.T @ targets / len(fc))
    u, sigma, _ = np.linalg.svd(w, full_matrices=False)
    keep = sigma > sigma.max() * 1e-6  # the centred targets have rank n_classes - 1
    u, sigma = u[:, keep], sigma[keep]
    # Scale so that gamma is relative to the cosine, independent of the ridge's units:
    # normalise W^T f to unit mean squared norm over the catalogue.
    mean_sq = np.mean(np.sum((f @ u * sigma) ** 2, axis=1))
    sigma = sigma / np.sqrt(mean_sq)
    scale = np.sqrt(1.0 + gamma * sigma**2) - 1.0
    return u.astype(np.float32), scale.astype(np.float32)


def fit(
    features,
    labels,
    gamma: float = DEFAULT_GAMMA,
    ridge: float = DEFAULT_RIDGE,
    pairs=None,
    shrinkage: float = DEFAULT_SHRINKAGE,
    pair_ids=(),
    rerank_gamma: float = DEFAULT_RERANK_GAMMA,
    prior_c: float | None = DEFAULT_PRIOR_C,
):
    """Fit a :class:`Projection` on labelled catalogue features.

    Parameters
    ----------
    features : ndarray, shape (n_items, dim)
        Raw L2-normalised catalogue embeddings (never query/test images: the projection must
        only know what the shop knows).
    labels : array_like, shape (n_items,)
        Category of each item; at least two distinct values.
    gamma : float
        Weight of the category similarity against the raw cosine in the stored vectors. 0
        leaves features unchanged; large values approach a pure category classifier, which
        loses the exact product.
    ridge : float
        Ridge penalty relative to the mean feature variance; keeps the map stable with few
        items per category.
    pairs : (anchors, views), optional
        Matching raw features for the invariance stage (:func:`fit_whitening`); without
        them the projection does not re-rank.
    shrinkage : float
        See :func:`fit_whitening`.
    pair_ids : sequence of int
        The products the pairs came from, recorded in the projection.
    rerank_gamma : float
        ``gamma`` of the category map in the re-ranking space.
    prior_c : float or None
        Inverse regularisation of the category prior
        (:func:`~.category_prior.fit_category_prior`); None fits none.

    Returns
    -------
    Projection
    """
    f = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels)
    if f.ndim != 2 or labels.shape != (f.shape[0],):
        raise ValueError(
            f"features must be (n, dim) and labels (n,), got {f.shape} and {labels.shape}."
        )
    basis, scale = _fit_category(f, labels, gamma, ridge)
    rerank = {}
    if pairs is not None:
        mean, whitening = fit_whitening(*pairs, shrinkage=shrinkage)
        whitened = _whiten(f, mean, whitening).astype(np.float64)
        rerank_basis, rerank_scale = _fit_category(whitened, labels, rerank_gamma, ridge)
        rerank = {
            "mean": mean,
            "whitening": whitening,
            "rerank_basis": rerank_basis,
            "rerank_scale": rerank_scale,
        }
    prior = {}
    if prior_c is not None:
        rows = prior_sample(labels)
        stored = _category_map(f[rows].astype(np.float32), basis, scale)
        prior = fit_category_prior(stored, labels[rows], prior_c)
    return Projection(
        basis=basis,
        scale=scale,
        **rerank,
        **prior,
        pair_ids=tuple(native(k) for k in pair_ids),
    )


def fit_projection(features, labels, *, encoder=None, **kwargs) -> Path:
    """Fit a projection on catalogue features and save it where ``encoder`` picks it up.

    Parameters
    ----------
    features : ndarray, shape (n_items, dim)
        Raw embeddings of the catalogue, from ``encoder.raw_embed(images)``.
    labels : array_like, shape (n_items,)
        Their categories.
    encoder : Encoder, optional
        Defaults to the configured encoder (``visualsearch.encoders.get_encoder()``).
    **kwargs
        ``gamma``, ``ridge``, ``pairs``, ``shrinkage``, ``pair_ids``, ``rerank_gamma`` and
        ``prior_c``, see :func:`fit`.

    Returns
    -------
    pathlib.Path
        The ``.npz`` written; the encoder's ``weights_hash`` changes accordingly.
    """
    if encoder is None:
        from . import get_encoder

        encoder = get_encoder()
    if not encoder.supports_projection:
        raise ValueError(f"Encoder {encoder.name!r} does not support a learned projection.")
    projection = fit(features, labels, **kwargs)
    return projection.save(encoder.projection_path())
