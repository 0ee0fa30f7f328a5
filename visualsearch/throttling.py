"""How many photo searches a client may make, through the page and the API together.

A photo search runs the encoder on an uploaded image, the most expensive thing a shopper
can ask for, so both ways in (``POST /visual/photo/`` and ``POST /api/search/image/``)
count against one allowance per client: the signed-in user, or else the client's address.

The address is :func:`lookalike.clients.client_address`: ``REMOTE_ADDR``, or, behind the
number of proxies the deployment trusts (DRF's ``NUM_PROXIES``), the address the outermost
of them appended to ``X-Forwarded-For``; a forged header never buys another allowance. The
recommender counts shoppers' events per the same address.

The counts live in the cache named by ``VISUALSEARCH_THROTTLE_CACHE``, which must be shared
by every process (the project uses a database cache, or Redis when ``REDIS_URL`` is set).
They are counted with the cache's ``incr`` in fixed windows of the rate's duration
(:func:`lookalike.clients.count_in_window`), not with DRF's read-modify-write of a list of
timestamps: fifty uploads sent at once all read the same list, so each found room and all
were served. ``incr`` is one atomic command on Redis (``INCR``); Django's database cache
implements it as a read then a write, so there concurrent requests can still slip through,
one reason production runs on Redis. A fixed window lets a client spend two allowances
across a window's edge, never more, and its ``Retry-After`` is never longer than the
rate's duration. A refused request gives its count
back, so a client that waits ``Retry-After`` is served.
The rate is DRF's ``DEFAULT_THROTTLE_RATES["image_search"]``, read on every request;
``None`` there switches throttling off, and a project that names no rate gets
:data:`DEFAULT_RATE`.
"""

import math

from django.core.cache import caches
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from lookalike.clients import client_address, count_in_window

from .conf import app_settings

__all__ = ["DEFAULT_RATE", "PhotoSearchThrottle", "client_address", "photo_search_wait"]

#: The rate when ``DEFAULT_THROTTLE_RATES`` has no ``image_search`` entry.
DEFAULT_RATE = "30/minute"


class PhotoSearchThrottle(SimpleRateThrottle):
    """DRF throttle of photo searches, usable by plain Django views too
    (:func:`photo_search_wait`).

    Its cache, rate and proxy count are read on every request, where DRF's throttles copy
    them at import, so a deployment's override or a test's ``settings`` fixture applies.
    """

    scope = "image_search"

    @property
    def cache(self):
        return caches[app_settings.THROTTLE_CACHE]

    def get_rate(self):
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope, DEFAULT_RATE)

    def get_ident(self, request):
        return client_address(request)

    def get_cache_key(self, request, view):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            ident = f"user-{user.pk}"
        else:
            ident = self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}

    def allow_request(self, request, view):
        """Count the request in its window (see the module docstring); ``False`` once the
        window holds the rate's number. A cache that cannot count (Redis down, with
        ``IGNORE_EXCEPTIONS``) lets the request through rather than fail it."""
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        cache = self.cache
        count, current, left = count_in_window(cache, self.key, self.duration, self.timer())
        if count is None or count <= self.num_requests:
            return True
        cache.decr(current)
        self._wait = max(left, 1.0)
        return False

    def wait(self):
        """Seconds until the next search is allowed; never ``None``, so that every 429
        carries a ``Retry-After``."""
        return getattr(self, "_wait", self.duration)


def photo_search_wait(request):
    """Count one photo search of ``request``'s client: ``None`` when it is allowed, else the
    whole seconds to wait before the next one (for ``Retry-After``)."""
    throttle = PhotoSearchThrottle()
    if throttle.allow_request(request, None):
        return None
    return max(math.ceil(throttle.wait()), 1)
