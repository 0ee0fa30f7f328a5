"""django-prometheus's closing middleware, with its method labels held to real methods."""

from django_prometheus.middleware import PrometheusAfterMiddleware as Base


class PrometheusAfterMiddleware(Base):
    """django-prometheus 2.5 labels its latency histogram with the request's method as
    sent: any client could add series (a histogram's worth each) with made-up methods,
    ``curl -X ZZ123``, without end. Here every ``method`` label goes through the class's own
    ``_method``, which names an unknown method ``<invalid method>``, as its counters do."""

    def label_metric(self, metric, request, response=None, **labels):
        if "method" in labels:
            labels["method"] = self._method(request)
        return super().label_metric(metric, request, response, **labels)
