"""Prometheus collector of the recommender (see :mod:`lookalike.metrics`)."""

from .models import RecommenderModel


class RecommenderCollector:
    """``recommendations_model_active_version``: the version the database says is active;
    ``recommendations_model_served_version``: the one this process has loaded (serving
    processes pick up a new version within ``RECOMMENDATIONS_RELOAD_CHECK_SECONDS``), 0
    before its first recommendation."""

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        from .services import serving

        active = RecommenderModel.objects.filter(is_active=True).values_list("version", flat=True)
        version = active.first() or 0
        yield GaugeMetricFamily(
            "recommendations_model_active_version", "Active recommender version.", value=version
        )
        identity = serving._cache.identity
        yield GaugeMetricFamily(
            "recommendations_model_served_version",
            "Recommender version loaded by the process that answered this scrape.",
            value=identity[1] if identity else 0,
        )
