"""Choosing a search's plan: a pure function of what the probe found.

The probe (:func:`.executors.probe`, one statement) tells whether the encoder's HNSW index
and the category's own graph exist, whether the vectors have sign bits, whether "similar to
a product" stays in that product's own category, and how many products the filter lets
through, counted up to the threshold; :func:`choose_plan` then names the plan, and
:mod:`.executors` carries it out. The plan is returned with the hits
(:class:`~.service.SearchResult`), so a bench or a test reads which plan answered instead of
watching private functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ..conf import app_settings
from ..services.vector_index import category_index_name

__all__ = ["MAX_EF_SEARCH", "Plan", "PlanKind", "PlannerSettings", "Probe", "choose_plan"]

#: pgvector's upper bound for ``hnsw.ef_search``; a larger setting would fail every search.
MAX_EF_SEARCH = 1000


class PlanKind(StrEnum):
    """The five ways a search is answered."""

    #: A range scan of the btree over the vectors' copies of category and price, every
    #: candidate's vector read once, the best ``2k + 10`` checked against the product table.
    EXACT_OVER_COPIES = "exact_over_copies"
    #: Every vector the product table lets through, found through the product table's
    #: indexes; also what answers when another plan comes up short of ``k``.
    EXACT_OVER_PRODUCTS = "exact_over_products"
    #: The category's own half-precision graph, re-ranked at full precision.
    CATEGORY_HNSW = "category_hnsw"
    #: The encoder's graph with an iterative scan.
    HNSW = "hnsw"
    #: A range scan of the covering btree of the vectors' sign bits, ranked by Hamming
    #: distance, the nearest ``SIGN_BITS_RERANK`` compared in full
    #: (:mod:`visualsearch.services.sign_bits`).
    SIGN_BITS = "sign_bits"


@dataclass(frozen=True)
class Plan:
    """The plan :func:`choose_plan` picked; ``category`` is the graph's for
    :attr:`PlanKind.CATEGORY_HNSW`, ``rerank`` how many :attr:`PlanKind.SIGN_BITS`
    compares in full."""

    kind: PlanKind
    category: int | None = None
    rerank: int | None = None


@dataclass(frozen=True)
class PlannerSettings:
    """The ``VISUALSEARCH_*`` planner settings of one search, read once at its start.

    ``ef_search`` is already raised to ``k`` (and to a caller's wider beam) and capped at
    :data:`MAX_EF_SEARCH`; ``far_ef_search`` likewise; ``category_exact_max_rows`` is at
    most ``exact_max_rows``; ``sign_bits_max_rows`` is 0 when the sign bits are off, and
    ``sign_bits_rerank`` at least ``k``.
    """

    exact_max_rows: int
    category_exact_max_rows: int
    category_indexes: bool
    ef_search: int
    far_ef_search: int
    max_scan_tuples: int
    sign_bits_max_rows: int = 0
    sign_bits_rerank: int = 0

    @classmethod
    def current(cls, k, ef_search=None):
        """The settings as they are now, for a search of ``k`` with at least ``ef_search``."""
        limit = app_settings.EXACT_SEARCH_MAX_ROWS
        return cls(
            exact_max_rows=limit,
            category_exact_max_rows=min(limit, app_settings.CATEGORY_EXACT_SEARCH_MAX_ROWS),
            category_indexes=bool(app_settings.CATEGORY_INDEXES),
            ef_search=min(max(int(app_settings.EF_SEARCH), k, ef_search or 0), MAX_EF_SEARCH),
            far_ef_search=min(max(int(app_settings.CATEGORY_FAR_EF_SEARCH), k), MAX_EF_SEARCH),
            max_scan_tuples=int(app_settings.MAX_SCAN_TUPLES),
            sign_bits_max_rows=(
                int(app_settings.SIGN_BITS_MAX_ROWS) if app_settings.SIGN_BITS else 0
            ),
            sign_bits_rerank=max(int(app_settings.SIGN_BITS_RERANK), k),
        )


@dataclass(frozen=True)
class Probe:
    """What the first statement of a search found.

    Attributes
    ----------
    indexed : bool
        The encoder's HNSW index exists.
    category_indexed : bool
        The filter's category has its own graph (asked only when the copies decide).
    matching : int or None
        Products the filter lets through, counted up to the threshold (plus one); ``None``
        when the filter narrows nothing and was not counted.
    on_copies : bool
        The vectors' copies of category and price decide the filter (and were counted).
    has_vector : bool or None
        For "similar to a product": whether it has a vector; ``None`` for a query vector.
    signed : bool
        The vectors' weights have a centre, so their sign bits can rank the filter.
    near : bool
        "Similar to a product" of the filter's own category: the query lies among the
        products a graph walk of that category meets first.
    """

    indexed: bool
    category_indexed: bool
    matching: int | None
    on_copies: bool
    has_vector: bool | None = None
    signed: bool = False
    near: bool = False


def category_graph(target, filters, on_copies, settings) -> str | None:
    """The name of the category graph the probe asks about, or ``None``: a category's own
    graph answers only when the vectors' copies decide membership."""
    if filters.category_id is None or not on_copies or not settings.category_indexes:
        return None
    return category_index_name(target.encoder, target.dim, filters.category_id)


def choose_plan(probe: Probe, filters, settings: PlannerSettings) -> Plan:
    """The plan for a search, from its probe, its filter and the planner settings.

    A large filter inside a category with its own graph walks that graph; any other filter
    above ``exact_max_rows`` (or none) walks the encoder's graph; a selective filter is
    scanned exactly, over the vectors' copies when they decide it, else through the product
    table. Without the graph the search is exact, whatever the count, unless the sign bits
    rank it.

    Between the two, a category filter of at most ``sign_bits_max_rows`` products is
    ranked by the vectors' sign bits unless the query is a product of that category: a
    walk from elsewhere meets too few of the filter's products (recall 0.72 at a million),
    a walk from inside meets them first.
    """
    matching = probe.matching
    if (
        probe.signed
        and probe.on_copies
        and filters.category_id is not None
        and matching is not None
        and matching <= settings.sign_bits_max_rows
        and not probe.near  # counted only to the exact thresholds then (and walked)
    ):
        exact = settings.exact_max_rows
        if matching > (settings.category_exact_max_rows if probe.category_indexed else exact):
            return Plan(PlanKind.SIGN_BITS, rerank=settings.sign_bits_rerank)
    if probe.category_indexed and matching > settings.category_exact_max_rows:
        return Plan(PlanKind.CATEGORY_HNSW, category=int(filters.category_id))
    if probe.indexed and (matching is None or matching > settings.exact_max_rows):
        return Plan(PlanKind.HNSW)
    if probe.on_copies:
        return Plan(PlanKind.EXACT_OVER_COPIES)
    return Plan(PlanKind.EXACT_OVER_PRODUCTS)
