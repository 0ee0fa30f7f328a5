"""Products looked at by the same shoppers: an item-to-item neighbourhood for short
histories.

A shopper with one or two events gives ALS very little to fold in: the factors it solves
for them are mostly its regularisation. Counting, for every pair of products, how many
shoppers interacted with both (item-based collaborative filtering; Sarwar et al. 2001,
Linden et al. 2003) needs no such fit: a shopper's next products are scored by summing
the counts of their few products' rows. Counts are left unnormalised on purpose: the
shoppers who touched a product also favour what is popular among its neighbours, and a
cosine normalisation (tried on the demo's simulated shoppers) halves NDCG by promoting
products seen by a single shopper.

:func:`fit_covisitation` counts them when a model is trained and keeps each product's
``RECOMMENDATIONS_COVISITATION_NEIGHBOURS`` most co-visited products; the table is
stored in the model's artefact beside its factors
(:func:`~recommendations.services.training.write_artifact`), read once per artefact
(:func:`covisitation_of`) and answers a shopper with a few row look-ups
(:meth:`CoVisitation.scores`). The offline evaluation fits it the same way on the events
before its cutoff.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..conf import app_settings
from .artefacts import ArtefactPart, read_part

__all__ = ["CoVisitation", "covisitation_of", "fit_covisitation", "read_covisitation"]

# Arrays of the table in a model's artefact (``.npz``).
_NEIGHBOURS = "lookalike_covisit_neighbours"
_COUNTS = "lookalike_covisit_counts"

#: Item columns whose co-visitation rows are computed at once (bounds the memory of the
#: sparse product to a block of rows).
_BLOCK = 2048


@dataclass(eq=False)
class CoVisitation:
    """Each item column's most co-visited item columns.

    Attributes
    ----------
    neighbours : ndarray of int32, shape (n_items, width)
        Item columns, most co-visited first; -1 pads a row with fewer neighbours.
    counts : ndarray of float32, shape (n_items, width)
        How many shoppers (``user_items`` rows) interacted with both; 0 where padded.
    """

    neighbours: np.ndarray
    counts: np.ndarray

    @property
    def n_items(self):
        return self.neighbours.shape[0]

    def scores(self, columns):
        """Summed co-visitation counts of the items ``columns`` lead to.

        Parameters
        ----------
        columns : sequence of int
            Item columns of a shopper's products (columns outside the table are ignored).

        Returns
        -------
        items : ndarray of int, shape (n,)
            Item columns with a count above zero, the ``columns`` themselves left out,
            best first (ties: the lower column first).
        scores : ndarray of float64, shape (n,)
        """
        columns = np.asarray([c for c in columns if 0 <= c < self.n_items], dtype=np.int64)
        if not len(columns):
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        items = self.neighbours[columns].ravel()
        counts = self.counts[columns].ravel().astype(np.float64)
        keep = (items >= 0) & ~np.isin(items, columns)
        items, inverse = np.unique(items[keep], return_inverse=True)
        totals = np.bincount(inverse, weights=counts[keep], minlength=len(items))
        order = np.lexsort((items, -totals))
        return items[order], totals[order]

    def to_arrays(self):
        """The arrays stored in a model's artefact."""
        return {_NEIGHBOURS: self.neighbours.astype(np.int32), _COUNTS: self.counts}

    @classmethod
    def from_arrays(cls, arrays):
        """The table stored in ``arrays`` (an opened ``.npz``), or ``None`` when it holds none."""
        if _NEIGHBOURS not in arrays:
            return None
        return cls(
            neighbours=np.asarray(arrays[_NEIGHBOURS], dtype=np.int32),
            counts=np.asarray(arrays[_COUNTS], dtype=np.float32),
        )


def fit_covisitation(user_items, width=None):
    """Count, for every pair of items, the ``user_items`` rows with both.

    Parameters
    ----------
    user_items : sparse matrix, shape (n_users, n_items)
        The matrix the model is trained on; only which cells are nonzero counts (a
        shopper's many views of a product are one shopper).
    width : int, optional
        Neighbours kept per item; ``RECOMMENDATIONS_COVISITATION_NEIGHBOURS`` by default.

    Returns
    -------
    CoVisitation
    """
    width = app_settings.COVISITATION_NEIGHBOURS if width is None else int(width)
    seen = sp.csr_matrix(user_items, copy=True)
    seen.eliminate_zeros()
    seen.data = np.ones_like(seen.data, dtype=np.float32)
    by_item = seen.T.tocsr()
    n_items = seen.shape[1]
    neighbours = np.full((n_items, width), -1, dtype=np.int32)
    counts = np.zeros((n_items, width), dtype=np.float32)
    for start in range(0, n_items, _BLOCK):
        block = (by_item[start : start + _BLOCK] @ seen).tocsr()
        for r in range(block.shape[0]):
            lo, hi = block.indptr[r], block.indptr[r + 1]
            items, values = block.indices[lo:hi], block.data[lo:hi]
            other = items != start + r
            items, values = items[other], values[other]
            best = np.lexsort((items, -values))[:width]
            neighbours[start + r, : len(best)] = items[best]
            counts[start + r, : len(best)] = values[best]
    return CoVisitation(neighbours=neighbours, counts=counts)


def read_covisitation(path):
    """The table stored in the artefact at ``path`` (relative to
    ``RECOMMENDATIONS_ARTIFACT_DIR`` unless absolute), or ``None`` when it holds none."""
    return read_part(path, CoVisitation.from_arrays)


_stored = ArtefactPart("covisitation", CoVisitation.from_arrays)


def covisitation_of(model):
    """The :class:`CoVisitation` of an :class:`~recommendations.services.serving.ActiveModel`:
    the one it carries (``covisitation``, set by the offline evaluation) or the one stored
    in its artefact, read once per artefact; ``None`` when it has none (a model trained
    before tables were stored) or when its shape is not the model's."""
    table = _stored.of(model)
    return table if table is not None and table.n_items == model.n_items else None
