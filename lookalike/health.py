"""django-health-check checks for what the plugins rely on besides the database and the
cache (``pip install lookalike[ops]``): the Celery broker of the job queue, a worker taking
the jobs (a broker that answers says nothing of the workers behind it), and the read
replicas. The plugin apps
add their models' checks (``visualsearch.health``, ``recommendations.health``); a project
lists the checks it wants in its ``HealthCheckView`` (the reference shop: ``config/urls.py``).
"""

import dataclasses
import datetime
import functools

from health_check.base import HealthCheck
from health_check.exceptions import ServiceUnavailable


def closes_connections(run):
    """For a check's ``run`` that reads the database: django-health-check runs it in a
    thread of its executor, whose connections Django's request cycle never closes; they are
    closed when it returns, rather than left open (a session per check and call) until
    the garbage collector finds them."""

    @functools.wraps(run)
    def wrapper(self):
        from django.db import connections

        try:
            return run(self)
        finally:
            connections.close_all()

    return wrapper


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


@dataclasses.dataclass
class JobWorkers(HealthCheck):
    """Some worker takes the jobs: fails while a job has waited more than ``wait`` for one
    and no job runs (a busy worker is a live one; a "running" job whose heartbeat stopped is
    not: its worker died, and no reaper may run to say so). The reaper fails such a job
    after ``LOOKALIKE_JOBS_QUEUED_TIMEOUT``; this says so sooner, to the monitoring."""

    wait: datetime.timedelta = dataclasses.field(default=datetime.timedelta(seconds=60), repr=False)

    @closes_connections
    def run(self):
        from django.utils import timezone

        from .jobs.models import Job
        from .jobs.worker import stale_seconds

        beating = timezone.now() - datetime.timedelta(seconds=stale_seconds())
        if Job.objects.filter(status=Job.Status.RUNNING, heartbeat_at__gte=beating).exists():
            return
        cutoff = timezone.now() - self.wait
        waiting = Job.objects.filter(status=Job.Status.QUEUED, created_at__lt=cutoff)
        oldest = waiting.order_by("created_at").first()
        if oldest is not None:
            seconds = round((timezone.now() - oldest.created_at).total_seconds())
            raise ServiceUnavailable(
                f"Job #{oldest.pk} has waited {seconds} s and no job runs: is a worker running?"
            )


@dataclasses.dataclass
class Replicas(HealthCheck):
    """Every read replica named in the settings (:func:`lookalike.routing.replica_aliases`)
    accepts a connection. A replica that is down costs no request (reads fall back to the
    primary), so only this check and the log say so. Passes without replicas."""

    def run(self):
        from django.db import DatabaseError, connections

        from .routing import mark_down, replica_aliases

        down = []
        for alias in replica_aliases():
            try:
                with connections[alias].cursor() as cursor:
                    cursor.execute("SELECT 1")
            except DatabaseError as exc:
                mark_down(alias, exc)
                down.append(alias)
            finally:
                connections[alias].close()
        if down:
            raise ServiceUnavailable(f"Replica(s) down: {', '.join(down)}")
