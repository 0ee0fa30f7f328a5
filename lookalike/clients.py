"""Who sent a request: the client's address, as far as the deployment can vouch for it.

Both plugins bound what one client can do by its address: photo searches are throttled per
address (:mod:`visualsearch.throttling`) and the recommender's events are counted and
weighed per address (:mod:`recommendations.events`). Both must see the same address, and
one that a client cannot choose.

The address is ``REMOTE_ADDR``, unless the deployment says how many proxies it trusts in
DRF's ``NUM_PROXIES``: then it is the address that many hops from the right of
``X-Forwarded-For``, the one the outermost trusted proxy appended. Anything to the left of
it was written by the client and is ignored, so a forged header never makes one client
look like many. Unlike DRF's own throttles, an unset ``NUM_PROXIES`` (``None``) means 0:
the header is trusted only when the deployment says so.

One IPv6 host is usually given a whole ``/64`` network, so it can send from as many
addresses as it likes: where an address stands for *who* (rather than where to answer),
:func:`client_network` takes the ``/64`` of an IPv6 address, as rate limiters commonly do.

What a client may do in a period is counted in fixed windows of a shared cache
(:func:`count_in_window`), with rates written the way DRF writes them (``"30/hour"``,
:func:`parse_rate`).
"""

import ipaddress
import logging
import time
from contextlib import nullcontext

from django.core.cache.backends.db import DatabaseCache
from django.core.cache.backends.filebased import FileBasedCache
from django.db import connections, router, transaction
from rest_framework.settings import api_settings

logger = logging.getLogger(__name__)

__all__ = [
    "cache_savepoint",
    "client_address",
    "client_network",
    "count_in_window",
    "parse_rate",
]

#: The prefix of an IPv6 address that :func:`client_network` keeps: one host's network.
IPV6_CLIENT_PREFIX = 64

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def client_address(request) -> str:
    """The client's address: ``REMOTE_ADDR``, or the address ``NUM_PROXIES`` hops from the
    right of ``X-Forwarded-For`` when the deployment trusts that many proxies."""
    num_proxies = api_settings.NUM_PROXIES or 0
    remote = request.META.get("REMOTE_ADDR", "")
    if num_proxies > 0:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if hops:
            return hops[-min(num_proxies, len(hops))]
    return remote


def client_network(address: str) -> str:
    """What stands for one client: an IPv4 address as it is, an IPv6 one as its ``/64``
    network (an IPv4-mapped one as its IPv4 address); anything else unchanged."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/{IPV6_CLIENT_PREFIX}", strict=False))
    return str(ip)


def parse_rate(rate):
    """``(number, seconds)`` of a rate like DRF's ``"30/hour"`` (the period by its first
    letter: second, minute, hour, day); ``None`` for no rate.

    Raises
    ------
    ValueError
        For a rate that is not ``"<number>/<period>"``.
    """
    if rate is None:
        return None
    number, _, period = str(rate).partition("/")
    if not number.strip().isdigit() or period[:1] not in _PERIODS:
        raise ValueError(f"{rate!r} is not a rate like '30/hour'.")
    return int(number), _PERIODS[period[0]]


def count_in_window(cache, key, duration, now=None):
    """Count one more of ``key`` in the current fixed window of ``duration`` seconds.

    The count is the cache's ``incr``: one atomic command on Redis (``INCR``), where a
    read-modify-write would let requests that arrive together all find room. Django's
    database cache implements it as a read then a write, so there concurrent requests can
    still slip through. A fixed window lets a client spend two allowances across a
    window's edge, never more.

    Returns
    -------
    count : int or None
        The count so far in this window, this one included; ``None`` when the cache could
        not count (Redis down, a database cache whose table was never created: logged;
        system check ``lookalike.W003`` reports the missing table).
    window_key : str
        The cache key of this window's count (to give a refused count back with ``decr``).
    seconds_left : float
        Until the window ends.
    """
    window, into = divmod(time.time() if now is None else now, duration)
    current = f"{key}:{int(window)}"
    left = duration - into
    try:
        with cache_savepoint(cache):
            cache.add(current, 0, duration + 1)
            try:
                count = cache.incr(current)
            except ValueError:  # expired between add() and incr()
                cache.set(current, 1, duration + 1)
                count = 1
            if isinstance(cache, DatabaseCache | FileBasedCache):
                # Their incr() is a get and a set with the cache's default timeout (300 s):
                # an hour's count would expire, and its allowance return, after 5 minutes.
                cache.touch(current, int(left) + 1)
    except Exception as exc:  # a limit that cannot count must not fail the request
        logger.warning("Could not count %s in the cache: %s", key, exc)
        return None, current, left
    return count, current, left


def cache_savepoint(cache):
    """A savepoint for the calls of a database ``cache`` (nothing for other caches).

    Its calls are SQL in the caller's transaction: a failing cache table (missing, locked)
    would abort that transaction, and PostgreSQL would roll back at its commit what the
    request saved (a purchase, a product). In a savepoint of its own, a failing call
    raises and leaves the transaction usable; the caller catches it. Outside a transaction
    (autocommit: most page requests) a failing statement aborts nothing, and a savepoint
    would only cost two more round trips (``BEGIN`` and ``COMMIT``) on every read.
    """
    if isinstance(cache, DatabaseCache):
        alias = router.db_for_write(cache.cache_model_class)
        if connections[alias].in_atomic_block:
            return transaction.atomic(using=alias)
    return nullcontext()
