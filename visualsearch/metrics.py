"""Prometheus collector of the visual index (see :mod:`lookalike.metrics`)."""

from django.db.models import Count

from .conf import app_settings
from .models import ProductEmbedding


class VisualIndexCollector:
    """``visualsearch_vectors{encoder, weights_hash, configured}``: stored vectors per
    encoder and weights version. Searches compare only vectors of the configured encoder's
    current weights, so a second version means a reindex is due or running."""

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        vectors = GaugeMetricFamily(
            "visualsearch_vectors",
            "Stored product vectors by encoder and weights version.",
            labels=["encoder", "weights_hash", "configured"],
        )
        configured = app_settings.ENCODER
        for row in (
            ProductEmbedding.objects.values("encoder", "weights_hash")
            .annotate(n=Count("pk"))
            .order_by()
        ):
            vectors.add_metric(
                [row["encoder"], row["weights_hash"], str(row["encoder"] == configured).lower()],
                row["n"],
            )
        yield vectors
