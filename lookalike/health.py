"""django-health-check checks for what the plugins rely on besides the database and the
cache (``pip install lookalike[ops]``): the Celery broker of the job queue. The plugin apps
add their models' checks (``visualsearch.health``, ``recommendations.health``); a project
lists the checks it wants in its ``HealthCheckView`` (the reference shop: ``config/urls.py``).
"""

import dataclasses
import datetime

from health_check.base import HealthCheck
from health_check.exceptions import ServiceUnavailable


@dataclasses.dataclass
class JobBroker(HealthCheck):
    """The broker of ``LOOKALIKE_JOBS_BACKEND = "celery"`` accepts a connection (Redis or
    RabbitMQ alike, through kombu). Passes without a check for the other backends, which
    need no broker."""

    timeout: datetime.timedelta = dataclasses.field(
        default=datetime.timedelta(seconds=3), repr=False
    )

    def run(self):
        from .jobs.fanout import fans_out

        if not fans_out():
            return
        from .jobs.tasks import run_job_task

        try:
            with run_job_task.app.connection_for_write() as conn:
                conn.ensure_connection(max_retries=1, timeout=self.timeout.total_seconds())
        except Exception as exc:  # kombu raises the transport's own errors
            # The class only: a broker URL in the message could carry a password.
            raise ServiceUnavailable(f"Broker unreachable ({type(exc).__name__})") from exc
