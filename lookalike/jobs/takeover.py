"""Taking over a Celery job whose process died.

A job's task is acknowledged late and requeued when the pool process running it dies
(``reject_on_worker_lost``), but by then the job's row says "running", so the new delivery
cannot claim it (:func:`lookalike.jobs.runner.run_job` only claims queued jobs). Left there,
the job would be reaped as failed and wait for a person to resume it. Instead the new
delivery calls :func:`take_over`, which resumes the job on its own once it is provably dead:
its key's lock free *and* no heartbeat for ``LOOKALIKE_JOBS_STALE_SECONDS``. Waiting for
the heartbeat matters for a job that fanned out: its chunks keep running on other workers
and beat with each batch, and a resumed job planned while they run could embed a product
twice. Until then the delivery asks to be retried (:data:`WAIT`).

Only jobs failed because their process went away (``Job.WORKER_LOST``) are resumed, each
once, and at most ``LOOKALIKE_JOBS_TAKEOVERS`` times in a row: a job that kills every
process running it (out of memory, say) then stays failed for a person to look into.
"""

import logging
from datetime import timedelta

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from ..conf import app_settings
from . import locks
from .models import Job
from .services import JobAlreadyRunning, resume
from .worker import reap_dead_jobs, stale_seconds

logger = logging.getLogger(__name__)

#: Outcomes of :func:`take_over`.
ALIVE = "alive"  # a live process holds the job and beats: this delivery is a duplicate
WAIT = "wait"  # dead or dying, but its heartbeat is fresh: try again later
RESUMED = "resumed"  # resumed as a new job
GIVEN_UP = "given_up"  # resumed on its own too many times in a row: left failed
NOTHING = "nothing"  # finished, failed for another reason, or resumed already


def take_over(job_id):
    """Resume job ``job_id`` if its process died; returns ``(outcome, new_job)``, where
    ``new_job`` is the resumed job for :data:`RESUMED` and ``None`` otherwise."""
    job = Job.objects.filter(pk=job_id).first()
    if job is None:
        return NOTHING, None
    if job.status == Job.Status.RUNNING:
        if not locks.is_free(locks.job_lock(job.lock_key)):
            # A live job beats every half second; a lock held without beats may be a
            # dead host's session that PostgreSQL has not dropped yet: look again later.
            return (ALIVE, None) if _beats_lately(job) else (WAIT, None)
        reap_dead_jobs()
        job.refresh_from_db()
        if job.status == Job.Status.RUNNING:
            return WAIT, None
    if job.status != Job.Status.FAILED or not job.result.get(Job.WORKER_LOST):
        return NOTHING, None
    if _beats_lately(job):
        return WAIT, None  # chunks of the job still commit batches
    return _resume(job)


def _beats_lately(job):
    cutoff = timezone.now() - timedelta(seconds=stale_seconds())
    return job.heartbeat_at is not None and job.heartbeat_at >= cutoff


def takeovers_in_a_row(job):
    """How many jobs before ``job``, each resumed on its own by the next, led to it."""
    count, child, parent = 0, job, job.resumed_from
    while parent is not None and parent.result.get(Job.TAKEN_OVER_BY) == child.pk:
        count += 1
        child, parent = parent, parent.resumed_from
    return count


def _resume(job):
    with transaction.atomic(), job.in_its_language():
        # One delivery at a time per job; a second finds it resumed.
        job = Job.objects.select_for_update().get(pk=job.pk)
        if job.result.get(Job.TAKEN_OVER_BY) or job.resumed_by.exists():
            return NOTHING, None
        count = takeovers_in_a_row(job)
        if count >= int(app_settings.JOBS_TAKEOVERS):
            job.message = gettext(
                "The process running this job died %(count)s times in a row; it was not "
                "resumed again. Find out why (the worker's log), then resume it."
            ) % {"count": count + 1}
            job.save(update_fields=["message"])
            logger.error("Job %s not resumed again", job.pk, extra={"job_id": job.pk})
            return GIVEN_UP, None
        try:
            new = resume(job)
        except JobAlreadyRunning:  # a person resumed it, or another job of the key runs
            return NOTHING, None
        job.result = {**job.result, Job.TAKEN_OVER_BY: new.pk}
        job.message = gettext(
            "The process running this job died; the job was resumed as #%(id)s."
        ) % {"id": new.pk}
        job.save(update_fields=["result", "message"])
    logger.warning(
        "Job %s resumed as %s after its process died",
        job.pk,
        new.pk,
        extra={"job_id": job.pk, "resumed_as": new.pk},
    )
    return RESUMED, new
