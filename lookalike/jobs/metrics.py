"""Prometheus collector of background jobs (see :mod:`lookalike.metrics`): read from the
database when Prometheus scrapes, so every web process reports the same values, whichever
worker (``run_jobs`` or Celery) runs the jobs."""

from django.db.models import Count

from .models import Job


class JobsCollector:
    """``lookalike_jobs{lock_key, status}`` for queued and running jobs, and the progress of
    each running one: ``lookalike_job_done`` / ``lookalike_job_total{job, lock_key}``."""

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        active = GaugeMetricFamily(
            "lookalike_jobs", "Queued and running background jobs.", labels=["lock_key", "status"]
        )
        for row in (
            Job.objects.filter(status__in=Job.ACTIVE)
            .values("lock_key", "status")
            .annotate(n=Count("pk"))
            .order_by()
        ):
            active.add_metric([row["lock_key"], row["status"]], row["n"])
        done = GaugeMetricFamily(
            "lookalike_job_done", "Items a running job has finished.", labels=["job", "lock_key"]
        )
        total = GaugeMetricFamily(
            "lookalike_job_total", "Items a running job has to do.", labels=["job", "lock_key"]
        )
        running = Job.objects.filter(status=Job.Status.RUNNING).values_list(
            "pk", "lock_key", "done", "total"
        )
        for pk, lock_key, n_done, n_total in running:
            done.add_metric([str(pk), lock_key], n_done)
            total.add_metric([str(pk), lock_key], n_total)
        yield from (active, done, total)
