"""Values a process computes at most once per ``RECOMMENDATIONS_POPULAR_CACHE_SECONDS``.

The popularity ranking (:mod:`.popularity`) and the allowed products (:mod:`.eligibility`)
are both read whole by every widget and cost a query of the whole window or catalogue to
compute. Each process keeps them in memory for the period: the first value for a key is
waited for; after that, while one thread computes a fresh value, the others serve the
expired one rather than queue behind it.
"""

from __future__ import annotations

import threading
import time

from ..conf import app_settings

__all__ = ["PeriodicCache"]


class PeriodicCache:
    """``{key: value}`` recomputed at most once per cache period (see the module docstring)."""

    def __init__(self):
        self.clear()

    def clear(self):
        """Forget every value (tests; ``serving.clear_cache``)."""
        self._lock = threading.Lock()
        self._entries = {}  # key -> (expires, value)

    def get(self, key, compute, holds=None):
        """The value for ``key``, from ``compute()`` when there is none, it expired, or
        ``holds(value)`` says it no longer holds (what it was read from changed)."""
        lock, entries = self._lock, self._entries  # as they were, should clear() run now

        def valid(entry):
            return time.monotonic() < entry[0] and (holds is None or holds(entry[1]))

        entry = entries.get(key)
        if entry is not None and valid(entry):
            return entry[1]
        if not lock.acquire(blocking=entry is None):
            return entry[1]
        try:
            entry = entries.get(key)
            if entry is None or not valid(entry):
                value = compute()
                expires = time.monotonic() + float(app_settings.POPULAR_CACHE_SECONDS)
                entry = entries[key] = (expires, value)
            return entry[1]
        finally:
            lock.release()
