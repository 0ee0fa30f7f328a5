"""The shop's Redis cache backend: django-redis's, which stops asking a Redis that has just
failed.

The shop treats its cache as optional (``IGNORE_EXCEPTIONS``: a lost cache costs
recomputations, never a failed page), but a Redis that stops answering without closing
its connections (a paused process, a full network buffer, a dropped route) makes each of a
page's cache calls wait for its socket timeout. A product page makes about nine, so every
page waited nine timeouts, and a few such requests held all of gunicorn's threads. Here,
once a call fails, this process answers every call as a miss (a write as done) for
:attr:`FailFastRedisCache.retry_after` seconds without asking Redis, then tries again: one
timeout per process every few seconds instead of nine a page. The failure is logged once
when the pause starts, not as a traceback per call.
"""

from __future__ import annotations

import logging
import threading
import time

from django_redis.cache import RedisCache
from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import ConnectionError as RedisConnectionError

__all__ = ["FailFastRedisCache"]

logger = logging.getLogger(__name__)


class _Paused(RedisConnectionError):
    """Redis failed moments ago and is not asked again yet."""


class FailFastRedisCache(RedisCache):
    """django-redis's ``RedisCache`` that, once a call fails, treats Redis as unreachable
    for ``retry_after`` seconds in this process (``IGNORE_EXCEPTIONS`` then answers as the
    cache would without Redis)."""

    #: Seconds for which a process does not ask a Redis that failed.
    retry_after = 5.0

    def __init__(self, server, params):
        super().__init__(server, params)
        self._paused_until = 0.0
        self._lock = threading.Lock()

    @property
    def client(self):
        return _Guarded(super().client, self)

    def _check(self):
        if time.monotonic() < self._paused_until:
            raise ConnectionInterrupted(connection=None) from _Paused(
                "Redis failed moments ago; not asked again yet."
            )

    def _failed(self, exc):
        with self._lock:
            if time.monotonic() < self._paused_until:
                return
            self._paused_until = time.monotonic() + self.retry_after
        logger.warning(
            "The Redis cache did not answer (%s); it is not asked again for %.0f s.",
            exc.__cause__ or exc,
            self.retry_after,
        )


class _Guarded:
    """The backend's client, whose calls go through its cache's pause."""

    def __init__(self, client, cache):
        self._client = client
        self._cache = cache

    def __getattr__(self, name):
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        def call(*args, **kwargs):
            self._cache._check()
            try:
                return attribute(*args, **kwargs)
            except ConnectionInterrupted as exc:
                self._cache._failed(exc)
                raise

        return call
