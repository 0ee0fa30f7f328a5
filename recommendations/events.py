"""The functions a shop calls to report what shoppers do.

Shops call :func:`record_view` from their product pages and :func:`record_event` for carts
and purchases; they never touch the recommender's models or training code.

Events are the recommender's training data and drive "Popular now", so they must be
expensive to forge and must not cost a write per request:

* Only shoppers who keep cookies count: a signed-in user, or a request that came back with
  its session cookie. A client without one (a script in a loop, most bots) is not counted
  and gets at most a session to come back with; ``HEAD`` requests and user agents that
  call themselves bots (``RECOMMENDATIONS_BOT_USER_AGENTS``) are never counted.
* A product page counts once per shopper and product within
  ``RECOMMENDATIONS_VIEW_WINDOW_SECONDS``: reloading it does not make it popular.
* A "similar" click (``?from=<widget>``) counts as one only for the shop's own widgets
  (``RECOMMENDATIONS_CLICK_SOURCES``) and when the link was followed from one of the shop's
  pages (same-origin ``Referer``); any other ``?from=`` is a plain view.
* Anonymous shoppers are stored by a keyed hash of their session key
  (:func:`hash_session_key`), never the live key, so staff who may read events cannot take
  over a shopper's session.

The interaction matrix caps what one shopper can weigh (see
:mod:`recommendations.services.matrix`), which bounds what any session can do.
"""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.utils import timezone
from django.utils.crypto import salted_hmac

from .conf import app_settings
from .experiments.recording import attribute_request
from .models import Event
from .services.shoppers import forget_shopper_events

KINDS = {choice.value for choice in Event.Kind}
#: Kinds that a page view records; they are de-duplicated within the view window.
VIEW_KINDS = (Event.Kind.VIEW, Event.Kind.SIMILAR_CLICK)


def hash_session_key(session_key: str | None) -> str:
    """The stored form of an anonymous shopper's session key: a keyed hash (HMAC with the
    project's ``SECRET_KEY``), 40 hexadecimal characters. Empty for no key."""
    if not session_key:
        return ""
    return salted_hmac("recommendations.session", session_key).hexdigest()[:40]


def request_shopper(request):
    """``(user or None, stored session key or None)`` of the shopper behind ``request``,
    without creating a session: what widgets and the API personalise for."""
    user = getattr(request, "user", None)
    if user is not None and not user.is_authenticated:
        user = None
    session = getattr(request, "session", None)
    key = session.session_key if session is not None else None
    return user, (hash_session_key(key) or None)


def _is_bot(request) -> bool:
    pattern = app_settings.BOT_USER_AGENTS
    agent = request.META.get("HTTP_USER_AGENT", "")
    return bool(pattern) and re.search(pattern, agent, re.IGNORECASE) is not None


def _countable_shopper(request, kind):
    """The stored shopper key of a request whose events count, or ``None``.

    A signed-in user counts; an anonymous shopper's page views count once their browser
    has sent the session cookie back. A first, cookie-less view gets a session (so that the
    next request counts) unless it is a bot or a ``HEAD`` request, which get nothing.
    Carts and purchases need a session of their own (and, on a real site, the CSRF cookie
    of a page seen before), so they always count.
    """
    if request.method not in ("GET", "POST") or _is_bot(request):
        return None
    session = request.session
    user = request.user if request.user.is_authenticated else None
    returning = settings.SESSION_COOKIE_NAME in request.COOKIES and session.session_key
    if user is None and not returning and kind in VIEW_KINDS:
        if not session.session_key:
            session.save()
        return None
    if not session.session_key:  # a signed-in user whose session was just flushed
        session.save()
    return hash_session_key(session.session_key)


def _same_origin(request) -> bool:
    referer = request.META.get("HTTP_REFERER", "")
    return bool(referer) and urlsplit(referer).netloc == request.get_host()


def record_event(request, product, kind, source=""):
    """Record that the shopper behind ``request`` did ``kind`` to ``product``.

    Returns the new ``Event``, or ``None`` when the request does not count (see the module
    docstring) or repeats a view within the window.

    Raises
    ------
    ValueError
        For an unknown ``kind``.
    """
    if kind not in KINDS:
        raise ValueError(f"Unknown event kind {kind!r}; expected one of {sorted(KINDS)}.")
    session_key = _countable_shopper(request, kind)
    if session_key is None:
        return None
    user = request.user if request.user.is_authenticated else None
    now = timezone.now()
    if kind in VIEW_KINDS and _seen_recently(user, session_key, product, kind, now):
        return None
    created = Event.objects.create(
        user=user,
        session_key=session_key,
        product=product,
        kind=kind,
        source=source[:50],
        created_at=now,
    )
    forget_shopper_events(user.pk if user is not None else None, session_key)
    attribute_request(request, created)  # to the experiment strip it followed, if any
    return created


def click_source(request) -> str:
    """The widget a product link was followed from (``?from=``), if it is one of the shop's
    own (``RECOMMENDATIONS_CLICK_SOURCES``) and was followed from one of its pages; else
    ``""``."""
    source = request.GET.get("from", "")
    if source in app_settings.CLICK_SOURCES and _same_origin(request):
        return source
    return ""


def record_view(request, product):
    """Record a product page: a ``similar_click`` when the shopper came from one of the
    shop's widgets (:func:`click_source`), else a ``view``."""
    source = click_source(request)
    kind = Event.Kind.SIMILAR_CLICK if source else Event.Kind.VIEW
    return record_event(request, product, kind, source=source)


def _seen_recently(user, session_key, product, kind, now) -> bool:
    window = app_settings.VIEW_WINDOW_SECONDS
    if not window:
        return False
    events = Event.objects.filter(
        product=product, kind=kind, created_at__gte=now - timedelta(seconds=window)
    )
    if user is not None:
        events = events.filter(user=user)
    else:
        events = events.filter(user__isnull=True, session_key=session_key)
    return events.exists()
