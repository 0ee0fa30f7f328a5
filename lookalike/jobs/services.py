"""Queueing and running background jobs.

The one seam between "start a job" and "where it runs" is :func:`enqueue` plus
:func:`run_job`. Whatever runs jobs (the ``run_jobs`` worker polling the database,
a Celery task, or the calling process in tests) ends in :func:`run_job`, which needs
nothing but the database: job code never assumes it shares a process with the web
request that queued it.

One job per ``lock_key`` runs at a time. Starting one is serialised with a
transaction-level advisory lock of its own namespace; a running job holds a session-level
advisory lock on its key in another namespace, so a job whose worker died (the lock
vanished with its connection) can be told from one that is merely slow, and is marked
failed so it can be resumed. The two namespaces differ so that starting a job never waits
for a running one: it is refused at once ("already running").

Nothing stays stuck: a queued job whose dispatch failed (the broker was down) is marked
failed at once, and a queued job that no worker picked up while no job was running (no
worker at all) is marked failed after ``LOOKALIKE_JOBS_QUEUED_TIMEOUT`` seconds. Reaping
runs before every enqueue, in every worker loop, before every Celery task and from the
admin's progress pages.
"""

import logging
import os
import socket
import time
import zlib
from contextlib import contextmanager
from datetime import timedelta

from django.db import (
    DatabaseError,
    InterfaceError,
    OperationalError,
    close_old_connections,
    connection,
    transaction,
)
from django.utils import timezone
from django.utils.module_loading import import_string

from .models import Job

logger = logging.getLogger(__name__)

MAX_STORED_ERRORS = 50
_LOCK_NAMESPACE = 0x4C4B  # "LK": a running job's key; apart from other users' locks
_ENQUEUE_NAMESPACE = 0x4C45  # "LE": serialises enqueues of one key, never held by a job


class JobAlreadyRunning(Exception):
    """A job with the same lock key is queued or running."""

    def __init__(self, job):
        self.job = job
        super().__init__(f"A {job.lock_key} job (#{job.pk}) is already {job.status}.")


class JobCancelled(Exception):
    pass


def job_handler(func):
    """Mark a function as runnable by jobs; only marked functions can be named by a row."""
    func.is_job_handler = True
    return func


def _lock_id(lock_key):
    # Advisory lock keys are two signed 32-bit integers.
    value = zlib.crc32(lock_key.encode())
    return value - (1 << 32) if value >= (1 << 31) else value


def _backend():
    from django.conf import settings

    return getattr(settings, "LOOKALIKE_JOBS_BACKEND", "worker")


def _queued_timeout():
    """Seconds a queued job may wait for a worker while no job runs at all."""
    from django.conf import settings

    return float(getattr(settings, "LOOKALIKE_JOBS_QUEUED_TIMEOUT", 600))


def active_job(lock_key):
    return Job.objects.filter(lock_key=lock_key, status__in=Job.ACTIVE).first()


def enqueue(handler, *, lock_key, params=None, user=None, resumed_from=None, coalesce=False):
    """Queue a job, or raise :class:`JobAlreadyRunning` if one with ``lock_key`` is active.

    With ``coalesce=True`` an already *queued* job with the same key is returned
    instead of raising: it will do the same work when it starts (used for the
    "embed new products" trigger, which may fire on every save).
    """
    func = import_string(handler)
    if not getattr(func, "is_job_handler", False):
        raise ValueError(f"{handler} is not a job handler.")
    reap_dead_jobs()
    with transaction.atomic():
        with connection.cursor() as cursor:
            # Held only for this short transaction, by enqueues of the same key: a running
            # job never holds it, so a product save during a reindex answers at once.
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s, %s)", [_ENQUEUE_NAMESPACE, _lock_id(lock_key)]
            )
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
        )
        transaction.on_commit(lambda: _dispatch(job.pk))
    return job


class LockBusy(Exception):
    """Another process holds a job key's lock: a job of that key is running."""

    def __init__(self, lock_key):
        self.lock_key = lock_key
        job = Job.objects.filter(lock_key=lock_key, status=Job.Status.RUNNING).first()
        running = f" (#{job.pk})" if job is not None else ""
        super().__init__(f"A {lock_key} job{running} is running; wait for it to finish.")


@contextmanager
def exclusive(lock_key):
    """Hold ``lock_key``'s lock, as a running job does, for work done outside a job (a
    ``manage.py`` command) that must not overlap the key's jobs; :class:`LockBusy` if one
    runs. Within a job of that key (same database session) it is re-entrant."""
    lock = (_LOCK_NAMESPACE, _lock_id(lock_key))
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", lock)
        (acquired,) = cursor.fetchone()
    if not acquired:
        raise LockBusy(lock_key)
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", lock)


def resume(job, user=None):
    """Queue a new job with the parameters of a failed one; handlers skip finished work."""
    if job.status != Job.Status.FAILED:
        raise ValueError("Only a failed job can be resumed.")
    return enqueue(
        job.handler, lock_key=job.lock_key, params=job.params, user=user, resumed_from=job
    )


def _dispatch(job_id):
    backend = _backend()
    if backend == "inline":
        run_job(job_id)
    elif backend == "celery":
        from .tasks import run_job_task

        try:
            run_job_task.apply_async((job_id,), retry=False)
        except Exception as exc:  # the broker is unreachable: never leave the job queued
            logger.exception("Could not send job %s to Celery.", job_id)
            Job.objects.filter(pk=job_id, status=Job.Status.QUEUED).update(
                status=Job.Status.FAILED,
                finished_at=timezone.now(),
                message=f"The job could not be sent to the workers ({type(exc).__name__}: "
                f"{exc}); resume it when the broker is back.",
            )
    # "worker": a run_jobs process picks the row up.


class JobContext:
    """What a handler gets: progress reporting and error recording, written to the row.

    Progress is written at most every ``interval`` seconds so that a fast loop does not
    turn into a stream of UPDATEs.
    """

    def __init__(self, job, interval=0.5):
        self.job = job
        self.interval = interval
        self._last_write = 0.0

    @property
    def params(self):
        return self.job.params

    def progress(self, done, total=None, message=None, force=False):
        self.job.done = done
        if total is not None:
            self.job.total = total
        if message is not None:
            self.job.message = message
        now = time.monotonic()
        if force or now - self._last_write >= self.interval:
            self._last_write = now
            self.job.heartbeat_at = timezone.now()
            Job.objects.filter(pk=self.job.pk).update(
                done=self.job.done,
                total=self.job.total,
                message=self.job.message,
                heartbeat_at=self.job.heartbeat_at,
                error_count=self.job.error_count,
                errors=self.job.errors,
            )

    def error(self, item, reason):
        self.job.error_count += 1
        if len(self.job.errors) < MAX_STORED_ERRORS:
            self.job.errors.append({"item": str(item), "reason": str(reason)})


def _worker_name():
    return f"{socket.gethostname()}:{os.getpid()}"


def run_job(job_id):
    """Claim a queued job and run it to the end in this process.

    Returns the job, or ``None`` if another process claimed it first.
    """
    claimed = Job.objects.filter(pk=job_id, status=Job.Status.QUEUED).update(
        status=Job.Status.RUNNING,
        started_at=timezone.now(),
        heartbeat_at=timezone.now(),
        worker=_worker_name(),
    )
    if not claimed:
        return None
    job = Job.objects.get(pk=job_id)
    lock = (_LOCK_NAMESPACE, _lock_id(job.lock_key))
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s, %s)", lock)
    ctx = JobContext(job)
    try:
        func = import_string(job.handler)
        result = func(ctx, **job.params)
    except Exception as exc:  # the job records the failure; the worker lives on
        logger.exception("Job %s failed", job.pk)
        job.status = Job.Status.FAILED
        job.message = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, (OperationalError, InterfaceError)):
            job.message = (
                f"The database connection was lost during the job ({exc}); resume it to "
                "finish the work."
            )
    else:
        job.status = Job.Status.SUCCEEDED
        job.result = result or {}
        if job.total and job.done < job.total and not job.error_count:
            job.done = job.total
    finally:
        job.finished_at = timezone.now()
        job.heartbeat_at = job.finished_at
        _save_outcome(job, lock)
    return job


def _save_outcome(job, lock):
    """Write the job's outcome and release its key. After a lost connection (a database
    restart during the job) the lock went with the old session: reconnect once and write
    the outcome, so that the job ends failed and resumable at once instead of waiting to
    be reaped; if the database is still away, the error reaches the worker loop."""
    try:
        job.save()
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", lock)
    except (OperationalError, InterfaceError):
        _drop_connection()
        job.save()


def reap_dead_jobs(stale_after=timedelta(seconds=30)):
    """Mark running jobs whose worker is gone, and queued jobs no worker takes, as failed,
    so they can be resumed.

    A running job counts as dead when its heartbeat is old *and* no session holds its
    advisory lock: a worker that died took its connection, and the lock, with it. A queued
    job counts as stuck when it has waited ``LOOKALIKE_JOBS_QUEUED_TIMEOUT`` seconds while
    no job was running anywhere: a busy worker would be running one.
    """
    reaped = _reap_stuck_queued()
    cutoff = timezone.now() - stale_after
    for job in Job.objects.filter(status=Job.Status.RUNNING, heartbeat_at__lt=cutoff):
        lock = (_LOCK_NAMESPACE, _lock_id(job.lock_key))
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", lock)
            (free,) = cursor.fetchone()
            if free:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", lock)
        if free:
            Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING).update(
                status=Job.Status.FAILED,
                finished_at=timezone.now(),
                message="The worker running this job stopped; resume it to finish the work.",
            )
            reaped += 1
    return reaped


def _reap_stuck_queued():
    cutoff = timezone.now() - timedelta(seconds=_queued_timeout())
    if Job.objects.filter(status=Job.Status.RUNNING).exists():
        return 0
    return Job.objects.filter(status=Job.Status.QUEUED, created_at__lt=cutoff).update(
        status=Job.Status.FAILED,
        finished_at=timezone.now(),
        message="No worker started this job; check that `manage.py run_jobs` (or a Celery "
        "worker) is running, then resume it.",
    )


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


#: Seconds a worker waits before trying again after the database was unreachable.
RETRY_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0)


def work(poll_interval=1.0, once=False, stop=None, sleep=time.sleep):
    """The loop of a ``run_jobs`` worker: reap dead jobs, run queued ones, sleep.

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
                run_job(job_id)
        except (OperationalError, InterfaceError) as exc:
            if not failures:
                logger.error("The job worker lost the database (%s); retrying.", exc)
            delay = RETRY_DELAYS[min(failures, len(RETRY_DELAYS) - 1)]
            failures += 1
            _drop_connection()
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


def _drop_connection():
    try:
        connection.close()
    except DatabaseError:
        pass
    close_old_connections()
