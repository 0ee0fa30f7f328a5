"""django-health-check check of the recommender (``pip install lookalike[ops]``; see
:mod:`lookalike.health`)."""

import dataclasses

from health_check.base import HealthCheck
from health_check.exceptions import ServiceUnavailable, ServiceWarning

from lookalike.health import closes_connections


@dataclasses.dataclass
class Recommender(HealthCheck):
    """The active recommender model is loaded in this process (its ``.npz`` read, as a
    widget would). A shop without a trained model yet is a warning: the widgets fall back
    to "Popular now" and "New in"."""

    @closes_connections
    def run(self):
        from .models import RecommenderModel
        from .services import serving

        if not RecommenderModel.objects.filter(is_active=True).exists():
            raise ServiceWarning("No recommender model is active yet")
        if serving.get_active_model() is None:
            raise ServiceUnavailable("The active recommender model did not load")
