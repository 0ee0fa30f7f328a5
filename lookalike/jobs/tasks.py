"""Celery entry points: the same :func:`lookalike.jobs.runner.run_job` as the database
worker, and :func:`lookalike.jobs.fanout.run_chunk` for the chunks of a job that fans out.

Both are acknowledged late (``acks_late``) and requeued when the pool process running them
dies (``reject_on_worker_lost``): a worker killed mid-task hands the message to another
one. That is safe because both are idempotent: ``run_job`` only claims a queued job (a
message handed back for a job whose process died resumes it, :mod:`.takeover`), and a
chunk skips what a previous delivery committed.
"""

from celery import shared_task
from django.db import InterfaceError, OperationalError, close_old_connections

from . import takeover
from .fanout import run_chunk
from .runner import run_job
from .worker import reap_dead_jobs, stale_seconds


@shared_task(
    bind=True,
    name="lookalike.run_job",
    acks_late=True,
    reject_on_worker_lost=True,
    # Retried only while a job whose process died is not yet provably dead (take_over).
    max_retries=None,
)
def run_job_task(self, job_id):
    reap_dead_jobs()  # Celery has no worker loop: jobs of dead workers are reaped here too
    job = run_job(job_id)
    if job is not None:
        return job.status
    # Not queued: a duplicate delivery, a finished job, or this message came back because
    # the process running the job died: then the job is resumed once it is provably dead.
    outcome, new = takeover.take_over(job_id)
    if outcome == takeover.WAIT:
        raise self.retry(countdown=stale_seconds() + 1)
    return outcome


@shared_task(
    name="lookalike.run_chunk",
    acks_late=True,
    reject_on_worker_lost=True,
    # A database that restarts or fails over: try the chunk again a little later (it skips
    # what was committed) instead of losing it.
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=2,
    retry_backoff_max=60,
    max_retries=5,
)
def run_chunk_task(job_id, index, handler, keys, params=None):
    close_old_connections()  # a connection broken since the last task is replaced first
    return run_chunk(job_id, index, handler, keys, params)


@shared_task(name="lookalike.reap_jobs")
def reap_jobs_task():
    """For Celery beat: mark dead running and stuck queued jobs as failed (every minute,
    say), so that a key is never blocked by a job nobody will finish."""
    return reap_dead_jobs()
