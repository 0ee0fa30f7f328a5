"""Prometheus metrics of the plugins, for projects that install ``prometheus_client``
(``pip install lookalike[ops]``; django-prometheus brings it and measures every request).

* :class:`SearchMetricsMiddleware`: ``lookalike_search_request_seconds{endpoint}``, the
  latency of the search endpoints (find similar, photo search, the similar API), apart from
  the rest of the shop's pages;
* :func:`observe_search`: ``lookalike_search_plan_seconds{plan}``, for the search service to
  time each plan it runs (exact scan, category graph, encoder graph...);
* :func:`metrics_view`: the ``/metrics`` page, adding the collectors named in
  ``LOOKALIKE_METRICS_COLLECTORS`` (values read from the database when Prometheus scrapes:
  job progress, the recommender version served, vectors per encoder version), and adding up
  the metrics of every process of a multi-process server (gunicorn) when
  ``PROMETHEUS_MULTIPROC_DIR`` is set, as prometheus_client documents.

Without prometheus_client the middleware passes requests through and
:func:`observe_search` does nothing, so the plugins never require it.
"""

from __future__ import annotations

import os
import threading
import time

from django.http import HttpResponse
from django.utils.crypto import constant_time_compare
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _

from .conf import app_settings

__all__ = ["SearchMetricsMiddleware", "metrics_view", "observe_search"]

try:
    import prometheus_client
except ImportError:  # pragma: no cover - only without the ops extra
    prometheus_client = None

#: Latency buckets in seconds: searches take milliseconds to a few hundred of them.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

#: URL names (``namespace:name``) whose requests count as searches, and their label.
DEFAULT_SEARCH_VIEWS = {
    "visualsearch:similar": "similar_page",
    "visualsearch:search_by_photo": "photo_page",
    "visualsearch-product-similar": "similar_api",
    "visualsearch-image-search": "photo_api",
}

_metrics = {}
_metrics_lock = threading.Lock()


def _histogram(name, documentation, labels):
    with _metrics_lock:
        if name not in _metrics:
            _metrics[name] = prometheus_client.Histogram(
                name, documentation, labels, buckets=BUCKETS
            )
        return _metrics[name]


def observe_search(plan: str, seconds: float) -> None:
    """Record one search run by ``plan`` that took ``seconds`` (no-op without
    prometheus_client)."""
    if prometheus_client is None:
        return
    _histogram(
        "lookalike_search_plan_seconds",
        "Time of one visual search, by the plan that ran it.",
        ["plan"],
    ).labels(plan=plan).observe(seconds)


class SearchMetricsMiddleware:
    """Time the search endpoints (``LOOKALIKE_METRICS_SEARCH_VIEWS``: URL name -> label)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if prometheus_client is None:
            return self.get_response(request)
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        views = app_settings.METRICS_SEARCH_VIEWS or DEFAULT_SEARCH_VIEWS
        endpoint = views.get(match.view_name) if match is not None else None
        if endpoint is not None:
            _histogram(
                "lookalike_search_request_seconds",
                "Latency of the search endpoints, whole request.",
                ["endpoint", "status"],
            ).labels(endpoint=endpoint, status=str(response.status_code)).observe(
                time.perf_counter() - started
            )
        return response


_registered = set()


def _collectors():
    return [import_string(path)() for path in app_settings.METRICS_COLLECTORS]


def metrics_view(request):
    """Prometheus' text format: this process's metrics (or every process's, with
    ``PROMETHEUS_MULTIPROC_DIR``) and the collectors of ``LOOKALIKE_METRICS_COLLECTORS``.
    Expose it to the monitoring network only (a proxy rule, or ``allow`` in its server), or
    set ``LOOKALIKE_METRICS_TOKEN``: the figures name views, job handlers and model
    versions, which a public shop need not tell everyone."""
    token = app_settings.METRICS_TOKEN
    if token and not _bearer_matches(request, token):
        response = HttpResponse(_("A valid bearer token is required."), status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    if prometheus_client is None:
        return HttpResponse("prometheus_client is not installed.", status=501)
    from prometheus_client import multiprocess

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = prometheus_client.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        for collector in _collectors():
            registry.register(collector)
    else:
        registry = prometheus_client.REGISTRY
        with _metrics_lock:
            for collector in _collectors():
                key = type(collector).__qualname__
                if key not in _registered:
                    registry.register(collector)
                    _registered.add(key)
    return HttpResponse(
        prometheus_client.generate_latest(registry),
        content_type=prometheus_client.CONTENT_TYPE_LATEST,
    )


def _bearer_matches(request, token):
    """Whether the request's ``Authorization`` header carries ``token`` (compared in constant
    time)."""
    scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and constant_time_compare(sent.strip(), str(token))
