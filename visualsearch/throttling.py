"""How many photo searches a client may make, through the page and the API together.

A photo search runs the encoder on an uploaded image, the most expensive thing a shopper
can ask for, so both ways in (``POST /visual/photo/`` and ``POST /api/search/image/``)
count against one allowance per client: the signed-in user, or else the client's address.

The address is ``REMOTE_ADDR``, unless the deployment says how many proxies it trusts in
DRF's ``NUM_PROXIES``: then it is the address that many hops from the right of
``X-Forwarded-For``, the one the outermost trusted proxy appended. Anything to the left
of it was written by the client and is ignored, so a forged header never buys another
allowance. Unlike DRF's own throttles, an unset ``NUM_PROXIES`` (``None``) means 0: the
header is trusted only when the deployment says so.

The counts live in the cache named by ``VISUALSEARCH_THROTTLE_CACHE``, which must be shared
by every process (the project uses a database cache, or Redis when ``REDIS_URL`` is set).
The rate is DRF's ``DEFAULT_THROTTLE_RATES["image_search"]``, read on every request;
``None`` there switches throttling off, and a project that names no rate gets
:data:`DEFAULT_RATE`.
"""

import math

from django.core.cache import caches
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from .conf import app_settings

__all__ = ["DEFAULT_RATE", "PhotoSearchThrottle", "client_address", "photo_search_wait"]

#: The rate when ``DEFAULT_THROTTLE_RATES`` has no ``image_search`` entry.
DEFAULT_RATE = "30/minute"


def client_address(request):
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

    def wait(self):
        """Seconds until the next search is allowed; never ``None``, so that every 429
        carries a ``Retry-After`` (DRF's gives none when the rate was lowered below the
        history a client already has)."""
        wait = super().wait()
        return self.duration if wait is None else wait


def photo_search_wait(request):
    """Count one photo search of ``request``'s client: ``None`` when it is allowed, else the
    whole seconds to wait before the next one (for ``Retry-After``)."""
    throttle = PhotoSearchThrottle()
    if throttle.allow_request(request, None):
        return None
    return max(math.ceil(throttle.wait()), 1)
