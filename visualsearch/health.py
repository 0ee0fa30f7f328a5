"""django-health-check check of visual search (``pip install lookalike[ops]``; see
:mod:`lookalike.health`)."""

import dataclasses
import datetime

from health_check.base import HealthCheck
from health_check.exceptions import ServiceUnavailable, ServiceWarning

from lookalike.health import closes_connections


@dataclasses.dataclass
class VisualEncoder(HealthCheck):
    """The configured encoder loads in this process (once; later checks reuse it, and the
    photo searches that follow find it warm) and the index holds vectors of its current
    weights: otherwise every search would come back empty (a warning while the first
    reindex runs)."""

    timeout: datetime.timedelta = dataclasses.field(
        default=datetime.timedelta(seconds=30), repr=False
    )

    @closes_connections
    def run(self):
        from .encoders import get_encoder
        from .models import ProductEmbedding

        try:
            encoder = get_encoder()
            weights = encoder.weights_hash
        except Exception as exc:  # a missing weights file, a runtime that fails to load
            raise ServiceUnavailable(f"Encoder did not load ({type(exc).__name__})") from exc
        if not ProductEmbedding.objects.filter(encoder=encoder.name, weights_hash=weights).exists():
            raise ServiceWarning(f"No vectors of {encoder.name}'s current weights yet")
