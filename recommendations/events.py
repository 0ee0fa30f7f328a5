"""The functions a shop calls to report what shoppers do.

Shops call :func:`record_view` from their product pages and :func:`record_event` for carts
and purchases; they never touch the recommender's models or training code.

Events are the recommender's training data and drive "Popular now", so they must be
expensive to forge and must not cost a write per request:

* Only shoppers who keep cookies count: a signed-in user, or a request that came back with
  its session cookie. A client without one (a script in a loop, most bots) is not counted
  and gets at most a session to come back with; ``HEAD`` requests and user agents that
  call themselves bots (``RECOMMENDATIONS_BOT_USER_AGENTS``) are never counted. The view
  that started a session is held in it (:data:`HELD_VIEW_KEY`) and recorded, at its own
  time, by the next request of the browser that comes back with the cookie and records an
  event or is shown a personalised widget (:func:`request_shopper`): a shopper who
  lands on a product from a search engine and goes on to a similar one has both views
  counted, the landing first, and the most telling event of a new shopper is not lost; a
  client that never returns the cookie leaves only an expired session row.
* A product page counts once per shopper and product within
  ``RECOMMENDATIONS_VIEW_WINDOW_SECONDS``: reloading it does not make it popular.
* A "similar" click (``?from=<widget>``) counts as one only for the shop's own widgets
  (``RECOMMENDATIONS_CLICK_SOURCES``) and when the link was followed from one of the shop's
  pages (same-origin ``Referer``); any other ``?from=`` is a plain view. This keeps a
  pasted or foreign link from counting, no more: ``Referer`` is written by the client, and
  a script forges it as easily as it forges the query. What a forged click can weigh is
  bounded by the caps below, not by this check.
* Anonymous shoppers are stored by a keyed hash of their session key
  (:func:`hash_session_key`), never the live key, so staff who may read events cannot take
  over a shopper's session.
* Each event stores who sent it by a keyed hash of the client's address
  (:func:`hash_client_address` of :func:`lookalike.clients.client_address`, which honours
  only the proxies the deployment trusts; an IPv6 address counts as its ``/64``, which one
  host usually holds whole), never the address itself.
* New anonymous sessions are cheap to make, so one address may start at most
  ``RECOMMENDATIONS_CLIENT_SESSION_RATE`` counting sessions a period (a fixed window in
  ``RECOMMENDATIONS_CLIENT_CACHE``). Beyond it a cookie-less first view writes no session
  row, and a session the shop started otherwise (a cart) records nothing until the next
  period; the page is served as always. When the cache cannot count (Redis down), the limit
  lets sessions through: the caps still hold.

The caps bound what the events that do count can weigh: one shopper on one product and in
all (:mod:`recommendations.services.matrix`), and all the anonymous sessions of one address
together, which weigh as its heaviest shopper (``RECOMMENDATIONS_MAX_CLIENT_SHOPPERS``,
:mod:`recommendations.services.clients`), in training and in "Popular now" alike. A script
with one address and a new cookie jar every two requests weighs what one of its sessions
does. Many addresses (a botnet) or many signed-up accounts are not bounded here.

A page view is committed without waiting for its WAL to reach the disk (PostgreSQL's
``synchronous_commit = off``, for that one transaction: :func:`_view_transaction`). Waiting
for the flush cost a product page about 2.7 ms of its wall time on a machine whose disk
flushes slowly (an ``INSERT`` in autocommit 4.1 ms at the median, 1.3 ms without the wait);
where the flush is fast (0.33 ms in autocommit) the extra round trips of the transaction
cost about 0.1 ms instead, and a product page measured the same either way. A crash of the
database server may then lose the views of its last moments (at most about three times
``wal_writer_delay``: 0.6 s by default), never half a row and never a cart or a purchase,
which wait as before, as does a view recorded inside a transaction of the caller's.
``RECOMMENDATIONS_ASYNC_VIEW_COMMIT = False`` makes views wait too.
"""

from __future__ import annotations

import logging
import re
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core.cache import caches
from django.db import connections, router, transaction
from django.utils import timezone
from django.utils.crypto import salted_hmac

from lookalike.catalogue import get_adapter
from lookalike.clients import client_address, client_network, count_in_window, parse_rate

from .conf import app_settings
from .experiments.recording import attribute_request
from .models import Event
from .services.shoppers import add_shopper_event, shopper_events_of

logger = logging.getLogger(__name__)

KINDS = {choice.value for choice in Event.Kind}
#: Kinds that a page view records; they are de-duplicated within the view window.
VIEW_KINDS = (Event.Kind.VIEW, Event.Kind.SIMILAR_CLICK)
#: Session entry holding the view that started an anonymous session, as ``[product key,
#: kind, source, epoch seconds]``, until the browser comes back with its cookie.
HELD_VIEW_KEY = "_recommendations_held_view"
#: Session entry of an anonymous session that has been counted against its address's
#: ``CLIENT_SESSION_RATE``; it counts from then on without asking again.
ADMITTED_SESSION_KEY = "_recommendations_admitted"


def hash_session_key(session_key: str | None) -> str:
    """The stored form of an anonymous shopper's session key: a keyed hash (HMAC with the
    project's ``SECRET_KEY``), 40 hexadecimal characters. Empty for no key."""
    if not session_key:
        return ""
    return salted_hmac("recommendations.session", session_key).hexdigest()[:40]


def hash_client_address(address: str | None) -> str:
    """The stored form of a client's address (``Event.client``): a keyed hash (HMAC with
    the project's ``SECRET_KEY``) of its :func:`~lookalike.clients.client_network` (an IPv6
    address's ``/64``), 40 hexadecimal characters. Empty for no address."""
    if not address:
        return ""
    return salted_hmac("recommendations.client", client_network(address)).hexdigest()[:40]


def request_shopper(request):
    """``(user or None, stored session key or None)`` of the shopper behind ``request``,
    without creating a session: what widgets and the API personalise for.

    A browser back with the cookie of the session its first view started has that view
    recorded now, if no event of its own did so: the home page seen after landing on a
    product is personalised for it."""
    user = getattr(request, "user", None)
    if user is not None and not user.is_authenticated:
        user = None
    session = getattr(request, "session", None)
    key = session.session_key if session is not None else None
    stored = hash_session_key(key) or None
    if stored and HELD_VIEW_KEY in session and _returning(request):
        _record_held_view(request, user, stored, hash_client_address(client_address(request)))
    return user, stored


def _returning(request) -> bool:
    """Whether ``request`` came back with its session's cookie (and may count at all)."""
    if request.method not in ("GET", "POST") or _is_bot(request):
        return False
    return settings.SESSION_COOKIE_NAME in request.COOKIES and bool(request.session.session_key)


def _is_bot(request) -> bool:
    pattern = app_settings.BOT_USER_AGENTS
    agent = request.META.get("HTTP_USER_AGENT", "")
    return bool(pattern) and re.search(pattern, agent, re.IGNORECASE) is not None


def _admit_session(session, client) -> bool:
    """Whether an anonymous ``session`` may count, counting it against its address's
    ``CLIENT_SESSION_RATE`` the first time (and marking it so in the session)."""
    if session.get(ADMITTED_SESSION_KEY):
        return True
    allowed = True
    rate = parse_rate(app_settings.CLIENT_SESSION_RATE)
    if rate is not None and client:
        number, seconds = rate
        try:
            cache = caches[app_settings.CLIENT_CACHE]
            count, _, _ = count_in_window(cache, f"recommendations:sessions:{client}", seconds)
        except Exception:  # a cache that cannot count must not break the page
            logger.warning("Could not count a new session of a client.", exc_info=True)
            count = None
        allowed = count is None or count <= number
        if count == number + 1:  # once a period: the first session turned away
            logger.warning(
                "An address started more than %s anonymous sessions in %s s "
                "(RECOMMENDATIONS_CLIENT_SESSION_RATE): its new sessions' views are not "
                "recorded until the period ends. Testing a shop from one machine? Sign in, "
                "or raise the rate in development.",
                number,
                seconds,
            )
    if allowed:
        session[ADMITTED_SESSION_KEY] = True
    return allowed


def _countable_shopper(request, kind, client, held=None):
    """The stored shopper key of a request whose events count, or ``None``.

    A signed-in user counts; an anonymous shopper's page views count once their browser
    has sent the session cookie back. A first, cookie-less view gets a session (so that the
    next request counts), holding ``held`` (the view itself) to be recorded then, unless it
    is a bot or a ``HEAD`` request, which get nothing, or its address has started its
    allowance of sessions in this period (:func:`_admit_session`).
    Carts and purchases need a session of their own (and, on a real site, the CSRF cookie
    of a page seen before), so they always count: a shopper behind a busy shared address (a
    carrier's NAT, an office) never loses a purchase, and the per-address caps of training
    and popularity bound what they weigh.
    """
    if request.method not in ("GET", "POST") or _is_bot(request):
        return None
    session = request.session
    user = request.user if request.user.is_authenticated else None
    returning = _returning(request)
    if user is None and not returning and kind in VIEW_KINDS:
        if not session.session_key and _admit_session(session, client):
            if held is not None:
                session[HELD_VIEW_KEY] = held
            session.save()
        return None
    if user is None and kind in VIEW_KINDS and not _admit_session(session, client):
        return None
    if not session.session_key:  # a signed-in user whose session was just flushed
        session.save()
    return hash_session_key(session.session_key)


def _same_origin(request) -> bool:
    referer = request.META.get("HTTP_REFERER", "")
    try:
        return bool(referer) and urlsplit(referer).netloc == request.get_host()
    except ValueError:  # "http://[" and the like: not a page of this shop
        return False


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
    client = hash_client_address(client_address(request))
    now = timezone.now()
    held = [str(product.pk), kind, source[:50], now.timestamp()]
    session_key = _countable_shopper(request, kind, client, held if kind in VIEW_KINDS else None)
    if session_key is None:
        return None
    user = request.user if request.user.is_authenticated else None
    user_id = user.pk if user is not None else None
    _record_held_view(request, user, session_key, client)
    if kind in VIEW_KINDS and _seen_recently(user_id, session_key, product.pk, kind, now):
        return None
    with _view_transaction(kind):
        created = _create(user, session_key, client, kind, source, now, product=product)
        attribute_request(request, created)  # to the experiment strip it followed, if any
    return created


def _create(user, session_key, client, kind, source, created_at, **product):
    """Write one event (``product=`` or ``product_id=``) and add it to the shopper's events
    this request has read."""
    event = Event.objects.create(
        user=user,
        session_key=session_key,
        client=client,
        kind=kind,
        source=str(source)[:50],
        created_at=created_at,
        **product,
    )
    add_shopper_event(user.pk if user is not None else None, session_key, event)
    return event


def _record_held_view(request, user, session_key, client):
    """Record the view that started the shopper's session, held in it until now (see the
    module docstring), unless its product is gone. Returns the event, or ``None``.

    Two requests of one browser may both find the view held (a page and a request of its
    own script, sent together): a key added to ``RECOMMENDATIONS_CLIENT_CACHE`` lets only
    one of them record it. A cache that cannot answer lets both."""
    held = request.session.pop(HELD_VIEW_KEY, None)
    if not isinstance(held, list) or len(held) != 4 or not _first_to_record(session_key):
        return None
    user_id = user.pk if user is not None else None
    adapter = get_adapter()
    try:
        pk, kind, source, ts = held
        pk = adapter.parse_pk(pk)
        created_at = datetime.fromtimestamp(float(ts), tz=UTC)
    except (ValueError, TypeError, OverflowError):
        return None
    if kind not in VIEW_KINDS or _seen_recently(user_id, session_key, pk, kind, timezone.now()):
        return None  # a session cookie replayed (signed-cookie sessions) counts once a window
    if not adapter.get_product_model()._base_manager.filter(pk=pk).exists():
        return None
    with _view_transaction(kind):
        return _create(user, session_key, client, kind, source, created_at, product_id=pk)


def _first_to_record(session_key) -> bool:
    try:
        cache = caches[app_settings.CLIENT_CACHE]
        return bool(cache.add(f"recommendations:held:{session_key}", 1, 300))
    except Exception:  # a cache that cannot answer must not lose the view
        logger.warning("Could not mark a held view as recorded.", exc_info=True)
        return True


@contextmanager
def _view_transaction(kind):
    """A transaction that commits without waiting for the WAL flush, for a page view
    recorded in autocommit (see the module docstring); otherwise nothing of its own."""
    alias = router.db_for_write(Event)
    connection = connections[alias]
    if kind not in VIEW_KINDS or not app_settings.ASYNC_VIEW_COMMIT or connection.in_atomic_block:
        yield
        return
    with transaction.atomic(using=alias):
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")
        yield


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


def _seen_recently(user_id, session_key, product_pk, kind, now) -> bool:
    """Whether the shopper did ``kind`` to the product within the view window. From their
    events, read once per request (:func:`~.services.shoppers.shopper_events_of`): the
    strips on the page read the same events next, so the check costs no query of its own."""
    window = app_settings.VIEW_WINDOW_SECONDS
    if not window:
        return False
    since = (now - timedelta(seconds=window)).timestamp()
    for pid, event_kind, ts in shopper_events_of(user_id, session_key).rows:
        if ts < since:
            return False  # newest first: the rest are older still
        if pid == product_pk and event_kind == kind:
            return True
    return False
