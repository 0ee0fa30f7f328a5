"""The shop's Redis cache backend: django-redis's, which stops reading from a Redis that has
just failed.

The shop treats its cache as optional (``IGNORE_EXCEPTIONS``: a lost cache costs
recomputations, never a failed page), but a Redis that stops answering without closing
its connections (a paused process, a full network buffer, a dropped route) makes each of a
page's cache calls wait for its socket timeout. A product page makes about nine, nearly all
reads, so every page waited nine timeouts, and a few such requests held all of gunicorn's
threads. Here, once a call fails, every thread of the process answers reads as misses for
:attr:`FailFastRedisCache.retry_after` seconds without asking Redis, then asks again.

A read answered as a miss is always safe: the stamps read a missing token as a new one and
recompute, ``cached_db`` sessions read the database. So is an ``add`` skipped, which
replaces nothing: the stamps ``add`` each token they found missing, and sent while Redis
hung, a page's four adds had cost it two seconds. Any other write skipped would not be
safe: another process would go on reading the value it replaced (a session, a stamp's
bump). So writes and deletes are always sent, and cost their timeout while Redis hangs;
they are few (a session saved, a stamp bumped, a throttle counted). The failure is logged
once when the pause starts, not as a traceback per call.
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

#: Reads, answered as misses during a pause, and ``add``, answered as not added.
READS = frozenset({"get", "get_many", "has_key", "ttl", "pttl", "keys", "iter_keys", "add"})

#: ``{server: monotonic time until which it is not read}``, for the whole process: Django
#: makes a cache backend per thread, and each thread must not pay its own timeout.
_paused_until: dict[str, float] = {}
_lock = threading.Lock()


class _Paused(RedisConnectionError):
    """Redis failed moments ago and is not read again yet."""


class FailFastRedisCache(RedisCache):
    """django-redis's ``RedisCache`` that, once a call fails, answers reads as misses (and
    adds as not added) for ``retry_after`` seconds in this process (``IGNORE_EXCEPTIONS``
    then answers as the cache would without Redis); other writes are always sent."""

    #: Seconds for which the process does not read from a Redis that failed.
    retry_after = 5.0

    @property
    def client(self):
        return _Guarded(super().client, self)

    def _key(self):
        return str(self._server)

    def _check(self):
        if time.monotonic() < _paused_until.get(self._key(), 0.0):
            raise ConnectionInterrupted(connection=None) from _Paused(
                "Redis failed moments ago; not read again yet."
            )

    def _failed(self, exc):
        with _lock:
            if time.monotonic() < _paused_until.get(self._key(), 0.0):
                return
            _paused_until[self._key()] = time.monotonic() + self.retry_after
        logger.warning(
            "The Redis cache did not answer (%s); it is not read again for %.0f s.",
            exc.__cause__ or exc,
            self.retry_after,
        )


class _Guarded:
    """The backend's client, whose reads go through the process's pause."""

    def __init__(self, client, cache):
        self._client = client
        self._cache = cache

    def __getattr__(self, name):
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        def call(*args, **kwargs):
            if name in READS:
                self._cache._check()
            try:
                return attribute(*args, **kwargs)
            except ConnectionInterrupted as exc:
                self._cache._failed(exc)
                raise

        return call
