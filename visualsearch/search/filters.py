"""What a search is asked and what it answers: the filter, the hits, the query's target."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from lookalike.catalogue import get_adapter

__all__ = ["MAX_K", "Filters", "Hit", "NotIndexed", "Target", "check_k", "vector_text"]

#: The most neighbours one search returns.
MAX_K = 1000


@dataclass(frozen=True)
class Filters:
    """Which products a search may return, besides those the catalogue adapter shows.

    ``category_id`` is a category key as the adapter knows it (its
    :meth:`~lookalike.catalogue.CatalogueAdapter.filter_category` decides membership);
    prices are in currency units; ``exclude_ids`` are product keys.
    """

    category_id: object = None
    min_price: Decimal | None = None
    max_price: Decimal | None = None
    in_stock: bool = False
    exclude_ids: tuple = ()

    @property
    def narrows(self) -> bool:
        """Whether the filter may be selective enough for an exact scan to be cheaper."""
        return (
            self.category_id is not None
            or self.min_price is not None
            or self.max_price is not None
            or self.in_stock
        )

    @property
    def priced(self) -> bool:
        """Whether the filter names a price range."""
        return self.min_price is not None or self.max_price is not None

    def products(self):
        """The adapter's shown products under the filter, as a queryset (exclusions apart)."""
        adapter = get_adapter()
        products = adapter.get_queryset()
        if self.category_id is not None:
            products = adapter.filter_category(products, self.category_id)
        if self.priced:
            products = adapter.filter_price(products, self.min_price, self.max_price)
        if self.in_stock:
            products = adapter.filter_in_stock(products)
        return products


@dataclass(frozen=True)
class Hit:
    product_id: object  # the product's key: an int or a UUID
    score: float  # cosine similarity, 1 - cosine distance


class NotIndexed(Exception):
    """The product has no vector for the encoder (not embedded yet, or its image failed)."""


@dataclass(frozen=True)
class Target:
    """What a search looks near: a query vector (as pgvector text) or a product's stored
    vector, compared with the vectors of ``encoder`` made by the weights ``weights_hash``."""

    encoder: str
    dim: int
    weights_hash: str
    vector_text: str | None = None
    product_id: object = None


def check_k(k):
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K:
        raise ValueError(f"k must be an integer between 1 and {MAX_K}, got {k!r}.")


def vector_text(vector, dim) -> str:
    """``vector`` as pgvector's text, refused unless it has ``dim`` finite numbers."""
    v = np.asarray(vector, dtype=np.float32).ravel()
    if v.shape != (dim,):
        raise ValueError(f"The query vector has {v.size} dimensions; the encoder has {dim}.")
    if not np.all(np.isfinite(v)):
        raise ValueError("The query vector contains NaN or infinite values.")
    return "[" + ",".join(f"{x:.9g}" for x in v.tolist()) + "]"
