"""At most a few photo searches decode and embed at once in a process.

A photo search holds a decoded photo and the encoder's working arrays: a bounded amount
each (see :mod:`visualsearch.imaging`), but an application server with many threads could
run dozens at once and multiply it. The encoder is CPU-bound and already uses every core,
so more simultaneous searches than ``VISUALSEARCH_PHOTO_SEARCH_CONCURRENCY`` would only
queue inside it: the others wait their turn here, up to
``VISUALSEARCH_PHOTO_SEARCH_WAIT_SECONDS``, and are then told to come back (503 with
``Retry-After``). Memory per process is then bounded by the setting, not by the traffic.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

from .conf import app_settings

__all__ = ["Busy", "photo_search_slot"]

_lock = threading.Lock()
_slots: tuple[int, threading.BoundedSemaphore] | None = None


class Busy(Exception):
    """Every photo-search slot of this process stayed taken for the whole wait."""

    retry_after = 5


def _semaphore() -> threading.BoundedSemaphore:
    global _slots
    size = max(1, int(app_settings.PHOTO_SEARCH_CONCURRENCY))
    with _lock:
        if _slots is None or _slots[0] != size:
            _slots = (size, threading.BoundedSemaphore(size))
        return _slots[1]


@contextmanager
def photo_search_slot():
    """Hold one of the process's photo-search slots for the ``with`` block.

    Raises
    ------
    Busy
        When no slot frees up within ``VISUALSEARCH_PHOTO_SEARCH_WAIT_SECONDS``.
    """
    semaphore = _semaphore()
    if not semaphore.acquire(timeout=float(app_settings.PHOTO_SEARCH_WAIT_SECONDS)):
        raise Busy()
    try:
        yield
    finally:
        semaphore.release()
