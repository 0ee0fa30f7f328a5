"""Read replicas: search and recommendation reads go to a replica, everything else to the
primary, and a replica that is down is skipped without failing a request.

The project's settings name the replicas as database aliases (the reference shop makes
``replica_1``, ``replica_2``... from ``DATABASE_REPLICA_URLS``) and install
:class:`ReplicaRouter`. During a web request (and inside :func:`use_replicas`), the router
sends **reads** of the models of the apps in
``LOOKALIKE_REPLICA_APPS`` (default: ``visualsearch``, ``recommendations`` and the app of
``LOOKALIKE_PRODUCT_MODEL``: vectors, models, blend profiles, the catalogue) to a replica,
except the models in ``LOOKALIKE_PRIMARY_MODELS`` (default: ``recommendations.Event``,
which shoppers write and training reads). Everything else is the primary's: writes, jobs,
sessions, users, the admin, migrations, and every read outside a request (management
commands, jobs, workers, the shell), which writes what it reads more often than not. A read
in a request also goes to the primary

* inside a transaction on the primary (``atomic``): what it just wrote is not on a
  replica yet;
* inside :func:`use_primary` (the job runner wraps every job in it, so a reindex or a
  training never reads data that lags behind);
* for the rest of a request that is not a GET or HEAD, or whose path starts with one of
  ``LOOKALIKE_PRIMARY_PATHS`` (default ``/admin/``), with :class:`PrimaryDatabaseMiddleware`.

Raw SQL picks its connection with :func:`read_connection` (``read_alias`` for the alias),
the way ``visualsearch.services.vectors`` does.

A replica is checked before a request's first read on it, as Django's
``CONN_HEALTH_CHECKS`` would, but here a replica that fails the check (or refuses a
connection) is marked down for ``LOOKALIKE_REPLICA_COOLDOWN`` seconds (default 5) in this
process and the read goes to the next replica, then to the primary: the request never sees
the failure. After the cool-down one request tries it again. What is left is a replica
that dies between that check and the query a few milliseconds later: that one query fails,
and the next request goes elsewhere.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
import time

from django.conf import settings
from django.core.signals import request_finished, request_started
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.utils.translation import get_language_from_path

from .conf import app_settings

logger = logging.getLogger(__name__)

__all__ = [
    "PrimaryDatabaseMiddleware",
    "ReplicaRouter",
    "read_alias",
    "read_connection",
    "replica_aliases",
    "use_primary",
    "use_replicas",
]

_primary = contextvars.ContextVar("lookalike_use_primary", default=False)
_replicas = contextvars.ContextVar("lookalike_use_replicas", default=False)
_down_until: dict[str, float] = {}
_down_lock = threading.Lock()
_next = threading.local()


def replica_aliases() -> list[str]:
    """The database aliases whose settings say they are replicas: ``TEST["MIRROR"]`` names
    the primary (a replica has no test database of its own) or the alias starts with
    ``replica``."""
    aliases = []
    for alias, config in settings.DATABASES.items():
        if alias == DEFAULT_DB_ALIAS:
            continue
        mirror = (config.get("TEST") or {}).get("MIRROR")
        if mirror == DEFAULT_DB_ALIAS or alias.startswith("replica"):
            aliases.append(alias)
    return aliases


def _cooldown() -> float:
    return float(app_settings.REPLICA_COOLDOWN)


def _replica_apps() -> set[str]:
    apps = app_settings.REPLICA_APPS
    if apps is None:
        product = app_settings.PRODUCT_MODEL or ""
        apps = ["visualsearch", "recommendations"]
        if "." in product:
            apps.append(product.split(".")[0])
    return set(apps)


def _primary_models() -> set[str]:
    return {name.lower() for name in app_settings.PRIMARY_MODELS}


def _replica_readable(model) -> bool:
    if model is None:
        return True
    meta = model._meta
    if meta.app_label not in _replica_apps():
        return False
    return f"{meta.app_label}.{meta.model_name}" not in _primary_models()


@contextlib.contextmanager
def use_primary():
    """Every read inside goes to the primary (jobs, and code that must read its writes)."""
    token = _primary.set(True)
    try:
        yield
    finally:
        _primary.reset(token)


@contextlib.contextmanager
def use_replicas():
    """Reads inside may go to replicas outside a request too (a report, a benchmark)."""
    token = _replicas.set(True)
    try:
        yield
    finally:
        _replicas.reset(token)


def mark_down(alias, exc=None):
    """Skip ``alias`` in this process for the cool-down; its connection is dropped."""
    with _down_lock:
        first = _down_until.get(alias, 0.0) <= time.monotonic()
        _down_until[alias] = time.monotonic() + _cooldown()
    if first:
        logger.warning(
            "Database replica %s is unavailable (%s); reading from the primary for %.0f s.",
            alias,
            exc,
            _cooldown(),
        )
    try:
        connections[alias].close()
    except DatabaseError:
        pass


def _is_down(alias) -> bool:
    return _down_until.get(alias, 0.0) > time.monotonic()


def _healthy(alias) -> bool:
    """Connect to ``alias`` if needed and run Django's health check once per request;
    ``False`` (and the replica marked down) instead of an exception."""
    if _is_down(alias):
        return False
    connection = connections[alias]
    try:
        connection.close_if_health_check_failed()
        connection.ensure_connection()
    except DatabaseError as exc:
        mark_down(alias, exc)
        return False
    return True


def read_alias(model=None) -> str:
    """The alias to read ``model``'s rows from (the primary, ``"default"``, when no replica
    is configured, healthy, or appropriate). Replicas are taken in turn per thread."""
    if model is not None and not _replica_readable(model):
        return DEFAULT_DB_ALIAS
    if _primary.get() or getattr(_next, "primary", False):
        return DEFAULT_DB_ALIAS
    if not (_replicas.get() or getattr(_next, "in_request", False)):
        return DEFAULT_DB_ALIAS
    replicas = replica_aliases()
    if not replicas or connections[DEFAULT_DB_ALIAS].in_atomic_block:
        return DEFAULT_DB_ALIAS
    start = getattr(_next, "index", 0)
    for i in range(len(replicas)):
        alias = replicas[(start + i) % len(replicas)]
        if _healthy(alias):
            return alias
    return DEFAULT_DB_ALIAS


def read_connection(model=None):
    """The connection to run a read-only raw query about ``model`` on (see
    :func:`read_alias`)."""
    return connections[read_alias(model)]


class ReplicaRouter:
    """Database router: replica reads, primary writes and migrations."""

    def db_for_read(self, model, **hints):
        return read_alias(model)

    def db_for_write(self, model, **hints):
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1, obj2, **hints):
        # Replicas hold the primary's data: objects read from either may be related.
        return True

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db == DEFAULT_DB_ALIAS or db not in replica_aliases()


def _start_of_request(**kwargs):
    """A new request: health checks are due again on replica connections (Django does this
    for connections it reuses, but not when its test client runs the request), and the
    next replica in turn serves it."""
    _next.primary = False
    _next.in_request = True
    replicas = replica_aliases()
    if not replicas:
        return
    _next.index = (getattr(_next, "index", -1) + 1) % len(replicas)
    for alias in replicas:
        connection = connections[alias]
        if connection.connection is not None:
            connection.health_check_done = False


def _end_of_request(**kwargs):
    _next.in_request = False
    _next.primary = False


request_started.connect(_start_of_request, dispatch_uid="lookalike.routing.start_of_request")
request_finished.connect(_end_of_request, dispatch_uid="lookalike.routing.end_of_request")


def _without_language(path):
    """``path`` without the language prefix ``i18n_patterns`` puts before it, if any."""
    language = get_language_from_path(path)
    if language and path.startswith(f"/{language}/"):
        return path[len(language) + 1 :]
    return path


class PrimaryDatabaseMiddleware:
    """Requests that write (not GET or HEAD) and the paths in ``LOOKALIKE_PRIMARY_PATHS``
    (the admin) read the primary, so that a form shows what it just saved. Paths are read
    below the script's prefix (``SCRIPT_NAME``) and without a language prefix of
    ``i18n_patterns`` (``/de/admin/``)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        paths = tuple(app_settings.PRIMARY_PATHS)
        primary = request.method not in ("GET", "HEAD") or any(
            path.startswith(paths)
            for path in (request.path_info, _without_language(request.path_info))
        )
        _next.primary = primary
        return self.get_response(request)
