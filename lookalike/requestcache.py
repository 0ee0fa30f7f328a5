"""Values computed once per request and shared by everything that renders it.

A page may hold both recommendation widgets, and an API view may call several services:
each would otherwise read the same shopper's events, the same blend profile and the same
vectors again. :func:`memoize` keeps such values for the rest of the request. The scope
opens on Django's ``request_started`` signal and closes on ``request_finished``
(:class:`~lookalike.apps.LookalikeConfig` connects them), so nothing lives longer than
the request that computed it, and code outside a request (commands, Celery tasks, tests
that call services directly) computes every time. Keys name whose value it is (a
shopper's events are keyed by the shopper), so one request's values never answer for
another shopper, whose requests have scopes of their own.

The scope is a context variable: each thread (gunicorn's gthread workers, the
development server) and each ASGI request has its own.
"""

from __future__ import annotations

import contextvars

__all__ = ["end", "forget", "memoize", "replace", "start"]

_scope: contextvars.ContextVar[dict | None] = contextvars.ContextVar(
    "lookalike_request_cache", default=None
)


def start(**kwargs):
    """Open a request's scope (``request_started``)."""
    _scope.set({})


def end(**kwargs):
    """Close it (``request_finished``)."""
    _scope.set(None)


def memoize(key, compute):
    """``compute()``, computed once per request for ``key`` (a hashable that names
    everything the value depends on); outside a request, computed every time."""
    scope = _scope.get()
    if scope is None:
        return compute()
    try:
        return scope[key]
    except KeyError:
        value = scope[key] = compute()
        return value


def forget(key):
    """Drop ``key``'s value from the request's scope: what computed it has changed (an
    event recorded after the shopper's events were read)."""
    scope = _scope.get()
    if scope is not None:
        scope.pop(key, None)


def replace(key, update):
    """Replace ``key``'s value by ``update(value)`` if the request holds one: what computed
    it has changed in a way the caller can apply without computing it again."""
    scope = _scope.get()
    if scope is not None and key in scope:
        scope[key] = update(scope[key])
