"""Values kept per process and checked against version stamps in the shared cache.

Some answers change rarely but are read on every page: the default blend profile, the
running experiment, the navigation's categories, the newest products. Reading them from
the database on every request costs a query each; keeping them per process for a fixed
time would serve a published profile or a stopped experiment late. Instead each kind of
value has a *stamp*: a random token stored in the cache every process shares
(``CACHES["default"]``: Redis under ``make serve``, else a database table). Whatever
changes the value calls :func:`bump`, which writes a new token; a process keeps its copy
only while the token it was computed under is still the current one, so the next request
of every process after a bump computes it afresh.

All stamps are read with one ``get_many`` per request (memoized in the request's scope,
:mod:`lookalike.requestcache`); outside a request they are read on every call. A stamp the
cache has lost (eviction, a restart, a cache error) reads as a new token, so a lost stamp
costs a recomputation, never a stale answer.

A bump is written at once and again when the surrounding transaction commits: a process
that read the old rows between the two keeps them under a token that the second bump
replaces. With the database cache, each cache call inside a caller's transaction runs in a
savepoint of its own (:func:`_cache_call`): a failing cache table (missing, locked) must
not abort the transaction whose save called :func:`bump`, which PostgreSQL would then roll
back at its commit, losing the save.
"""

from __future__ import annotations

import threading
import uuid

from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from django.db import transaction

from . import requestcache
from .clients import cache_savepoint

__all__ = ["Stamped", "bump", "current"]

PREFIX = "lookalike:stamp:"
_REQUEST_KEY = ("lookalike.stamps",)
_names: set[str] = set()


def _key(name):
    return f"{PREFIX}{name}"


def _cache_call(method, *args, **kwargs):
    """``cache.<method>(...)``, in a savepoint of its own when the cache is a table of a
    database (see the module docstring); errors are the caller's to catch."""
    backend = caches[DEFAULT_CACHE_ALIAS]
    with cache_savepoint(backend):
        return getattr(backend, method)(*args, **kwargs)


def _read():
    names = sorted(_names)
    try:
        found = _cache_call("get_many", [_key(name) for name in names])
    except Exception:  # a cache that cannot answer: every value is recomputed
        found = {}
    stamps = {}
    for name in names:
        token = found.get(_key(name))
        if token is None:
            token = uuid.uuid4().hex
            try:
                # add: two processes that both found it missing keep the first token.
                if not _cache_call("add", _key(name), token, timeout=None):
                    token = _cache_call("get", _key(name)) or token
            except Exception:
                pass
        stamps[name] = token
    return stamps


def current(name):
    """The current token of stamp ``name``."""
    _names.add(name)
    stamps = requestcache.memoize(_REQUEST_KEY, _read)
    if name not in stamps:  # declared after this request read its stamps
        requestcache.forget(_REQUEST_KEY)
        stamps = requestcache.memoize(_REQUEST_KEY, _read)
    return stamps[name]


def bump(name):
    """Mark every process's values under stamp ``name`` as out of date."""
    _names.add(name)

    def write():
        try:
            _cache_call("set", _key(name), uuid.uuid4().hex, timeout=None)
        except Exception:
            pass
        requestcache.forget(_REQUEST_KEY)

    write()
    transaction.on_commit(write)


class Stamped:
    """A per-process store of values computed under stamp ``name``.

    ``limit`` bounds the number of keys kept (the store is emptied when it is passed), so
    values keyed by product cannot grow without end.
    """

    def __init__(self, name, limit=10_000):
        self.name = name
        self.limit = limit
        self._values = {}
        self._lock = threading.Lock()
        _names.add(name)

    def get(self, key, compute):
        """The value for ``key``, computed by ``compute()`` unless this process holds one
        computed under the current stamp."""
        token = current(self.name)
        entry = self._values.get(key)
        if entry is not None and entry[0] == token:
            return entry[1]
        value = compute()
        with self._lock:
            if len(self._values) >= self.limit:
                self._values.clear()
            self._values[key] = (token, value)
        return value

    def get_many(self, keys, compute_many):
        """``{key: value}`` of ``keys``: those this process holds under the current stamp,
        and the others from one call of ``compute_many(missing_keys)``, a dict (a key it
        leaves out is ``None``, kept as well)."""
        token = current(self.name)
        found, missing = {}, []
        for key in dict.fromkeys(keys):
            entry = self._values.get(key)
            if entry is not None and entry[0] == token:
                found[key] = entry[1]
            else:
                missing.append(key)
        if missing:
            computed = compute_many(missing)
            with self._lock:
                if len(self._values) + len(missing) > self.limit:
                    self._values.clear()
                for key in missing:
                    found[key] = computed.get(key)
                    self._values[key] = (token, found[key])
        return found

    def bump(self):
        bump(self.name)

    def clear(self):
        """Forget this process's values (tests; the stamp is left alone)."""
        with self._lock:
            self._values.clear()
