"""The products a blend may show, kept in each process.

Every widget asks two things of the catalogue that do not depend on the shopper: which of
its two hundred candidates the profile's rules allow (with each one's category and
creation time, which diversity and recency read), and which allowed products are the
newest. Each was a query per widget, two per product page. A :class:`Snapshot` answers
both from memory: every allowed product's id, category key and creation time, newest
first, read in one query and kept for ``RECOMMENDATIONS_POPULAR_CACHE_SECONDS`` (the
period the popularity ranking is kept too). While one thread refreshes an expired
snapshot, the others serve the old one rather than wait.

A snapshot is read again once the catalogue's stamp moves. It only proposes: the few
products a strip keeps are loaded afresh under the same rules (``LiveSource.products``), so
a product that went out of stock or was withdrawn since is dropped there, never shown. What
staleness costs (a stock change or a bulk update the shop did not report) is a strip one
product short, or a product added in the last minute missing from "New in" until the next
refresh.

Memory: three integer arrays and a list of each product's (category key, creation time)
pair as Python objects, about 150 bytes a product: under a megabyte for the demo, some
150 MB per process for a million products, whose refresh (one query of every allowed product) then
takes seconds of one thread each period.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lookalike.catalogue import CATALOGUE
from lookalike.keys import first_not_in, native, to_array
from lookalike.stamps import current as current_stamp

from .periodic import PeriodicCache

__all__ = ["Snapshot", "clear", "snapshot"]


@dataclass(eq=False)
class Snapshot:
    """The allowed products: ``ids`` newest first (creation time descending, unknown times
    last, then id descending: the order "New in" shows), with ``entries`` (each one's
    ``(category key, created)``, made by the caller's ``entry``) in the same order, and the
    ids sorted with their positions for look-ups by :func:`np.searchsorted`. The entries
    are made once, when the snapshot is read: a strip looks up two hundred of them."""

    ids: np.ndarray
    entries: list
    sorted_ids: np.ndarray
    positions: np.ndarray
    #: The catalogue's stamp when it was read (:data:`lookalike.catalogue.CATALOGUE`).
    stamp: str | None = None

    @classmethod
    def build(cls, rows, entry):
        """From ``(id, category key, created)`` rows already in "New in" order;
        ``entry((category key, created))`` is what :meth:`lookup` answers for each."""
        ids = to_array([row[0] for row in rows])
        positions = np.argsort(ids, kind="stable")
        return cls(ids, [entry(row[1:]) for row in rows], ids[positions], positions)

    def lookup(self, product_ids):
        """``{product id: entry}`` of those of ``product_ids`` allowed."""
        wanted = list(dict.fromkeys(native(pid) for pid in product_ids))
        if not wanted or not len(self.ids):
            return {}
        keys = to_array(wanted)
        if keys.dtype != self.ids.dtype:
            # Ids of another type (a string for an integer key) are never allowed ones.
            return {}
        at = np.minimum(np.searchsorted(self.sorted_ids, keys), len(self.ids) - 1)
        found = self.sorted_ids[at] == keys
        out = {}
        entries = self.entries
        positions = self.positions[at[found]].tolist()
        for pid, position in zip(keys[found].tolist(), positions, strict=True):
            out[pid] = entries[position]  # tolist() gives plain keys
        return out

    def newest(self, n, exclude=()):
        """The ids of the ``n`` newest allowed products not in ``exclude``."""
        if n <= 0:
            return []
        return [native(self.ids[i]) for i in first_not_in(self.ids, set(exclude), n)]


_snapshots = PeriodicCache()


def clear():
    """Forget the snapshots (tests; ``serving.clear_cache``)."""
    _snapshots.clear()


def snapshot(key, read_rows, entry):
    """The :class:`Snapshot` for ``key`` (what the allowed set depends on: the profile's
    rules), read with ``read_rows()`` (``(id, category key, created)`` rows in "New in"
    order) at most once per cache period per process, its entries made by ``entry``, and
    again once the catalogue's stamp moves (a product saved, or
    :func:`lookalike.changes.catalogue_changed` after a bulk update): products hidden in
    bulk would otherwise leave strips short for the rest of the period."""
    stamp = current_stamp(CATALOGUE.name)

    def build():
        built = Snapshot.build(list(read_rows()), entry)
        built.stamp = stamp
        return built

    return _snapshots.get(key, build, holds=lambda found: found.stamp == stamp)
