"""Prometheus collector of background jobs (see :mod:`lookalike.metrics`): read from the
database when Prometheus scrapes, so every web process reports the same values, whichever
worker (``run_jobs`` or Celery) runs the jobs."""

from django.db.models import Count, F, Max, OuterRef, Q, Subquery

from .models import Job


class JobsCollector:
    """``lookalike_jobs{lock_key, status}`` for queued and running jobs, and the progress of
    each running one: ``lookalike_job_done`` / ``lookalike_job_total{job, lock_key}``;
    ``lookalike_jobs_failing{lock_key}``, the jobs that failed since the last that
    succeeded with the same key (what to alert on: a failure that a later run or a resume
    set right no longer counts)."""

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
        yield from (active, done, total, _failing())


def _failing():
    from prometheus_client.core import GaugeMetricFamily

    failing = GaugeMetricFamily(
        "lookalike_jobs_failing",
        "Jobs failed since the last job with the same key succeeded.",
        labels=["lock_key"],
    )
    last_success = (
        Job.objects.filter(lock_key=OuterRef("lock_key"), status=Job.Status.SUCCEEDED)
        .values("lock_key")
        .annotate(last=Max("finished_at"))
        .values("last")
    )
    rows = (
        Job.objects.filter(status=Job.Status.FAILED)
        .annotate(last_success=Subquery(last_success))
        .filter(Q(last_success__isnull=True) | Q(finished_at__gt=F("last_success")))
        .values("lock_key")
        .annotate(n=Count("pk"))
        .order_by()
    )
    for row in rows:
        failing.add_metric([row["lock_key"]], row["n"])
    return failing
