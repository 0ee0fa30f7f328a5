"""Queueing background jobs: the API the plugin apps use.

The one seam between "start a job" and "where it runs" is :func:`enqueue`: after commit it
hands the job to ``LOOKALIKE_JOBS_BACKEND`` (a ``run_jobs`` worker polling the database, a
Celery task, or this process in tests), and each ends in
:func:`lookalike.jobs.runner.run_job`.

One job per ``lock_key`` runs at a time (:mod:`lookalike.jobs.locks`): a second one is
refused at once with :class:`JobAlreadyRunning`, never made to wait, and work done outside
a job that must not overlap the key's jobs takes the same lock with :func:`exclusive`.

The rest of the machinery lives beside this module, each part importing only those below
it: :mod:`~lookalike.jobs.worker` (reaping and the ``run_jobs`` loop) over
:mod:`~lookalike.jobs.runner` (one job, its :class:`~lookalike.jobs.runner.JobContext`)
over :mod:`~lookalike.jobs.fanout` (Celery chunks), over :mod:`~lookalike.jobs.locks`;
:mod:`~lookalike.jobs.takeover`, which resumes a Celery job whose process died, sits above
this module.
:class:`JobCancelled` and :func:`fans_out` belong to the fan-out, which raises and reads
them, and :class:`JobFailed` to the runner; they are imported here for the handlers that
use them.
"""

import logging
from contextlib import contextmanager

from django.db import connection, transaction
from django.utils import timezone
from django.utils.module_loading import import_string
from django.utils.translation import get_language, gettext

from ..conf import app_settings
from . import locks
from .fanout import JobCancelled, fans_out, send_tasks
from .models import Job
from .runner import JobFailed, run_job
from .worker import reap_dead_jobs

__all__ = [
    "JobAlreadyRunning",
    "JobCancelled",
    "JobFailed",
    "LockBusy",
    "active_job",
    "ask",
    "chunk_handler",
    "enqueue",
    "exclusive",
    "fans_out",
    "job_handler",
    "resume",
]

logger = logging.getLogger(__name__)


class JobAlreadyRunning(Exception):
    """A job with the same lock key is queued or running."""

    def __init__(self, job):
        self.job = job
        super().__init__(f"A {job.lock_key} job (#{job.pk}) is already {job.status}.")


class LockBusy(Exception):
    """Another process holds a job key's lock: a job of that key is running."""

    def __init__(self, lock_key):
        self.lock_key = lock_key
        job = Job.objects.filter(lock_key=lock_key, status=Job.Status.RUNNING).first()
        running = f" (#{job.pk})" if job is not None else ""
        super().__init__(f"A {lock_key} job{running} is running; wait for it to finish.")


def job_handler(func):
    """Mark a function as runnable by jobs; only marked functions can be named by a row."""
    func.is_job_handler = True
    return func


def chunk_handler(func):
    """Mark a function as runnable on a chunk of a job
    (:func:`lookalike.jobs.fanout.fan_out`): called as ``func(chunk_ctx, keys, **params)``,
    it must be idempotent."""
    func.is_chunk_handler = True
    return func


def active_job(lock_key):
    return Job.objects.filter(lock_key=lock_key, status__in=Job.ACTIVE).first()


def enqueue(
    handler,
    *,
    lock_key,
    params=None,
    user=None,
    resumed_from=None,
    coalesce=False,
    asked=(),
    language=None,
):
    """Queue a job, or raise :class:`JobAlreadyRunning` if one with ``lock_key`` is active.

    With ``coalesce=True`` an already *queued* job with the same key is returned
    instead of raising: it will do the same work when it starts (used for the
    "embed new products" trigger, which may fire on every save). ``asked``: requests the
    job starts with, as if :func:`ask` had made them. ``language``: the one its messages are
    written in (:meth:`Job.in_its_language`), by default the active one: the admin's who
    queued it, not the worker's.
    """
    func = import_string(handler)
    if not getattr(func, "is_job_handler", False):
        raise ValueError(f"{handler} is not a job handler.")
    reap_dead_jobs()
    with transaction.atomic():
        # Held only for this short transaction, by enqueues of the same key: a running
        # job never holds it, so a product save during a reindex answers at once.
        locks.serialise_enqueues(lock_key)
        current = active_job(lock_key)
        if current is not None:
            if coalesce and current.status == Job.Status.QUEUED:
                return current
            raise JobAlreadyRunning(current)
        job = Job.objects.create(
            handler=handler,
            lock_key=lock_key,
            params=params or {},
            created_by=user if user is not None and user.is_authenticated else None,
            resumed_from=resumed_from,
            result={f"asked:{request}": True for request in asked},
            language=(get_language() or "") if language is None else language,
        )
        transaction.on_commit(lambda: _dispatch(job))
    return job


@contextmanager
def exclusive(lock_key):
    """Hold ``lock_key``'s lock, as a running job does, for work done outside a job (a
    ``manage.py`` command) that must not overlap the key's jobs; :class:`LockBusy` if one
    runs. Within a job of that key (same database session) it is re-entrant."""
    lock = locks.job_lock(lock_key)
    if not locks.try_acquire(lock):
        raise LockBusy(lock_key)
    try:
        yield
    finally:
        locks.release(lock)


def resume(job, user=None):
    """Queue a new job with the parameters of a failed one, and what was asked of it that
    it did not do (:func:`ask`); handlers skip finished work. Resumed by a person, it speaks
    their language; on its own (:mod:`.takeover`), the failed job's."""
    if job.status != Job.Status.FAILED:
        raise ValueError("Only a failed job can be resumed.")
    asked = [key.removeprefix("asked:") for key in job.result if key.startswith("asked:")]
    return enqueue(
        job.handler,
        lock_key=job.lock_key,
        params=job.params,
        user=user,
        resumed_from=job,
        asked=asked,
        language=None if user is not None else job.language,
    )


def ask(job, request) -> bool:
    """Ask the active ``job`` to do ``request`` before it finishes, as its handler reads
    with :meth:`~lookalike.jobs.runner.JobContext.asked` (a reindex asked to look for
    products changed meanwhile, say). ``False`` when the job no longer listens: it has
    finished, or looked for the last time; its key is free in a moment."""
    table = connection.ops.quote_name(Job._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET result = result || jsonb_build_object(%s, true) "
            "WHERE id = %s AND status IN (%s, %s) AND NOT result ? %s",
            [f"asked:{request}", job.pk, *Job.ACTIVE, f"closed:{request}"],
        )
        return cursor.rowcount == 1


def _dispatch(job):
    backend = app_settings.JOBS_BACKEND
    if backend == "inline":
        run_job(job.pk)
    elif backend == "celery":
        try:
            send_tasks("lookalike.run_job", [(job.pk,)])
        except Exception as exc:  # the broker is unreachable: never leave the job queued
            logger.exception("Could not send job %s to Celery.", job.pk)
            with job.in_its_language():
                message = gettext(
                    "The job could not be sent to the workers (%(error)s); resume it when the "
                    "broker is back."
                ) % {"error": f"{type(exc).__name__}: {exc}"}
            Job.objects.filter(pk=job.pk, status=Job.Status.QUEUED).update(
                status=Job.Status.FAILED, finished_at=timezone.now(), message=message
            )
    # "worker": a run_jobs process picks the row up.
