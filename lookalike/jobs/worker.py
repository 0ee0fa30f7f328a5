"""Reaping jobs nobody will finish, and the database worker loop (``manage.py run_jobs``).

Nothing stays stuck: a queued job whose dispatch failed (the broker was down) is marked
failed at once (:func:`lookalike.jobs.services.enqueue`), and a queued job that no worker
picked up while no job was running (no worker at all) is marked failed after
``LOOKALIKE_JOBS_QUEUED_TIMEOUT`` seconds. Reaping runs before every enqueue, in every
worker loop, before every Celery task and from the admin's progress pages.
"""

import json
import logging
import time
from datetime import timedelta

from django.db import InterfaceError, OperationalError, transaction
from django.db.models.expressions import RawSQL
from django.utils import timezone
from django.utils.translation import gettext

from ..conf import app_settings
from . import locks
from .models import Job
from .runner import drop_connection, run_job

logger = logging.getLogger(__name__)

#: Seconds a worker waits before trying again after the database was unreachable.
RETRY_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0)


def _queued_timeout():
    """Seconds a queued job may wait for a worker while no job runs at all."""
    return float(app_settings.JOBS_QUEUED_TIMEOUT)


def stale_seconds():
    """Seconds without a heartbeat after which a running job with a free lock is dead."""
    return float(app_settings.JOBS_STALE_SECONDS)


def reap_dead_jobs(stale_after=None):
    """Mark running jobs whose worker is gone, and queued jobs no worker takes, as failed,
    so they can be resumed.

    A running job counts as dead when its heartbeat is older than ``stale_after``
    (``LOOKALIKE_JOBS_STALE_SECONDS``) *and* no session holds its advisory lock: a worker
    that died took its connection, and the lock, with it. A queued job counts as stuck when
    it has waited ``LOOKALIKE_JOBS_QUEUED_TIMEOUT`` seconds while no job was running
    anywhere: a busy worker would be running one.
    """
    if stale_after is None:
        stale_after = timedelta(seconds=stale_seconds())
    reaped = _reap_stuck_queued()
    cutoff = timezone.now() - stale_after
    for job in Job.objects.filter(status=Job.Status.RUNNING, heartbeat_at__lt=cutoff):
        if locks.is_free(locks.job_lock(job.lock_key)):
            with job.in_its_language():
                message = gettext(
                    "The worker running this job stopped; resume it to finish the work."
                )
            reaped += Job.objects.filter(
                pk=job.pk, status=Job.Status.RUNNING, heartbeat_at__lt=cutoff
            ).update(
                status=Job.Status.FAILED,
                finished_at=timezone.now(),
                message=message,
                # Merged in SQL: what others asked of the job meanwhile (services.ask) stays.
                result=RawSQL("result || %s::jsonb", (json.dumps({Job.WORKER_LOST: True}),)),
            )
    return reaped


def _reap_stuck_queued():
    cutoff = timezone.now() - timedelta(seconds=_queued_timeout())
    if Job.objects.filter(status=Job.Status.RUNNING).exists():
        return 0
    stuck = Job.objects.filter(status=Job.Status.QUEUED, created_at__lt=cutoff)
    reaped = 0
    for language in set(stuck.values_list("language", flat=True)):
        with Job(language=language).in_its_language():
            message = gettext(
                "No worker started this job; check that `manage.py run_jobs` (or a Celery "
                "worker) is running, then resume it."
            )
        reaped += stuck.filter(language=language).update(
            status=Job.Status.FAILED, finished_at=timezone.now(), message=message
        )
    return reaped


def claim_next():
    """Id of the oldest queued job whose lock key has no running job, or ``None``."""
    with transaction.atomic():
        running = Job.objects.filter(status=Job.Status.RUNNING).values("lock_key")
        job = (
            Job.objects.select_for_update(skip_locked=True)
            .filter(status=Job.Status.QUEUED)
            .exclude(lock_key__in=running)
            .order_by("created_at")
            .first()
        )
        return job.pk if job else None


def work(poll_interval=1.0, once=False, stop=None, sleep=time.sleep, finished=None):
    """The loop of a ``run_jobs`` worker: reap dead jobs, run queued ones, sleep;
    ``finished(job)`` after each job it ran.

    The loop outlives the database: when it is unreachable (a restart, a failover), the
    error is logged once per outage, the connection dropped and the loop tries again with
    growing pauses. A job that was running then is reaped as dead once the database is
    back (its advisory lock went with the old connection) and can be resumed.
    """
    failures = 0
    while stop is None or not stop():
        try:
            reap_dead_jobs()
            job_id = claim_next()
            if job_id is not None:
                job = run_job(job_id)
                if job is not None and finished is not None:
                    finished(job)
        except (OperationalError, InterfaceError) as exc:
            if not failures:
                logger.error("The job worker lost the database (%s); retrying.", exc)
            delay = RETRY_DELAYS[min(failures, len(RETRY_DELAYS) - 1)]
            failures += 1
            drop_connection()
            sleep(delay)
            continue
        if failures:
            logger.warning("The job worker reached the database again.")
            failures = 0
        if job_id is not None:
            continue
        if once:
            return
        sleep(poll_interval)
