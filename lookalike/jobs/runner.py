"""Running one job to the end in this process.

Whatever runs jobs (the ``run_jobs`` worker polling the database, a Celery task, or the
calling process in tests) ends in :func:`run_job`, which needs nothing but the database:
job code never assumes it shares a process with the web request that queued it. The job
holds its key's advisory lock (:mod:`lookalike.jobs.locks`) while it runs, so that a job
whose worker died can be told from one that is merely slow.
"""

import logging
import os
import socket
import time

from django.db import (
    DatabaseError,
    InterfaceError,
    OperationalError,
    close_old_connections,
    connection,
)
from django.utils import timezone
from django.utils.module_loading import import_string
from django.utils.translation import gettext

from . import locks
from .fanout import fan_out
from .models import Job

logger = logging.getLogger(__name__)


class JobFailed(Exception):
    """A failure a handler explains to people: its message (translated where it is raised)
    is the job's message as it is. Any other exception is shown with its type, as a fault."""


class JobContext:
    """What a handler gets: progress reporting and error recording, written to the row.

    Progress is written at most every ``interval`` seconds so that a fast loop does not
    turn into a stream of UPDATEs.
    """

    def __init__(self, job, interval=0.5):
        self.job = job
        self.interval = interval
        self._last_write = 0.0
        #: Whether the job handed chunks to other processes, which write its counters.
        self.fanned_out = False

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
        if len(self.job.errors) < Job.MAX_STORED_ERRORS:
            self.job.errors.append({"item": str(item), "reason": str(reason)})

    def asked(self, request):
        """Whether another process asked this job for ``request``
        (:func:`lookalike.jobs.services.ask`) since it last looked. Once it answers
        ``False`` nobody can ask any more, and :func:`~lookalike.jobs.services.ask` says so:
        look last, just before returning, and again after doing what was asked."""
        table = connection.ops.quote_name(Job._meta.db_table)
        asked, closed = f"asked:{request}", f"closed:{request}"
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} SET result = CASE WHEN result ? %s THEN result - %s "
                "ELSE result || jsonb_build_object(%s, true) END WHERE id = %s "
                "RETURNING NOT (result ? %s)",
                [asked, asked, closed, self.job.pk, closed],
            )
            row = cursor.fetchone()
        return bool(row and row[0])

    def fan_out(self, handler, chunks, **params):
        """Run ``handler`` over ``chunks`` on the workers and wait; see
        :func:`lookalike.jobs.fanout.fan_out`."""
        self.fanned_out = True
        return fan_out(self, handler, chunks, params=params)


def _worker_name():
    return f"{socket.gethostname()}:{os.getpid()}"


def _claim(job_id):
    """Whether this process took the queued job ``job_id`` (another may have first)."""
    return Job.objects.filter(pk=job_id, status=Job.Status.QUEUED).update(
        status=Job.Status.RUNNING,
        started_at=timezone.now(),
        heartbeat_at=timezone.now(),
        worker=_worker_name(),
    )


def run_job(job_id):
    """Claim a queued job and run it to the end in this process.

    Returns the job, or ``None`` if another process claimed it first.
    """
    if not _claim(job_id):
        return None
    from lookalike.routing import use_primary

    job = Job.objects.get(pk=job_id)
    lock = locks.job_lock(job.lock_key)
    locks.acquire(lock)
    log = {"job_id": job.pk, "handler": job.handler, "worker": job.worker}
    logger.info("Job %s started", job.pk, extra=log)
    started = time.monotonic()
    ctx = JobContext(job)
    stopped = False
    # Its messages in the language it was asked for in, not this worker's.
    with job.in_its_language():
        try:
            func = import_string(job.handler)
            # Jobs read what they (and the shop) just wrote: never a replica that lags.
            with use_primary():
                result = func(ctx, **job.params)
        except Exception as exc:  # the job records the failure; the worker lives on
            logger.exception("Job %s failed", job.pk, extra=log)
            _failed(job, exc)
        except BaseException:
            # The worker is being stopped (SIGTERM to a pool process, Ctrl-C): the job ends
            # failed, to be resumed, rather than "running" until the reaper finds it.
            logger.warning("Job %s stopped with its worker", job.pk, extra=log)
            job.status = Job.Status.FAILED
            job.message = gettext("The worker was stopped during the job; resume it to finish.")
            stopped = True
            raise
        else:
            _succeeded(job, result)
        finally:
            if job.status == Job.Status.FAILED:
                _reload_counters(job, ctx.fanned_out)
            if stopped:
                job.result = {**job.result, Job.WORKER_LOST: True}
            job.finished_at = timezone.now()
            job.heartbeat_at = job.finished_at
            _save_outcome(job, lock)
    logger.info(
        "Job %s %s",
        job.pk,
        job.status,
        extra={
            **log,
            "status": job.status,
            "done": job.done,
            "total": job.total,
            "error_count": job.error_count,
            "seconds": round(time.monotonic() - started, 3),
        },
    )
    return job


def _failed(job, exc):
    job.status = Job.Status.FAILED
    if isinstance(exc, JobFailed):
        job.message = str(exc)
    else:
        job.message = gettext("The job failed: %(error)s") % {
            "error": f"{type(exc).__name__}: {exc}"
        }
    if isinstance(exc, (OperationalError, InterfaceError)):
        job.message = gettext(
            "The database connection was lost during the job (%(error)s); resume it to "
            "finish the work."
        ) % {"error": exc}


def _succeeded(job, result):
    job.status = Job.Status.SUCCEEDED
    job.result = result or {}
    # A handler that reported no progress, or stopped short of its total without an
    # error, still finished: show it complete.
    if job.total and job.done < job.total and not job.error_count:
        job.done = job.total


def _reload_counters(job, fanned_out):
    """What others wrote in a failed job's row that this process's copy does not have, and
    saving the copy as it is would wipe: its ``result`` (what was asked of the job,
    :func:`lookalike.jobs.services.ask`, which a resume carries over) and, for a job that
    fanned out, the counters its chunks wrote (progress, failures, their bookkeeping)."""
    fields = ["done", "total", "error_count", "errors", "result"] if fanned_out else ["result"]
    try:
        job.refresh_from_db(fields=fields)
    except DatabaseError:  # the database is away: the outcome's own save will say so
        pass


def _save_outcome(job, lock):
    """Write the job's outcome and release its key. After a lost connection (a database
    restart during the job) the lock went with the old session: reconnect once and write
    the outcome, so that the job ends failed and resumable at once instead of waiting to
    be reaped; if the database is still away, the error reaches the worker loop. Without
    the lock the row may have been reaped (and resumed) meanwhile: it is written only while
    it still says this process runs it."""
    try:
        job.save()
        locks.release(lock)
    except (OperationalError, InterfaceError):
        drop_connection()
        fields = ["status", "message", "result", "done", "total", "error_count", "errors"]
        written = Job.objects.filter(
            pk=job.pk, status=Job.Status.RUNNING, worker=job.worker
        ).update(
            **{name: getattr(job, name) for name in fields},
            finished_at=job.finished_at,
            heartbeat_at=job.heartbeat_at,
        )
        if not written:
            logger.warning(
                "Job %s was reaped while its process lost the database; its row is kept",
                job.pk,
                extra={"job_id": job.pk},
            )


def drop_connection():
    """Close this thread's database connection, broken or not, so that the next query
    opens a new one."""
    try:
        connection.close()
    except DatabaseError:
        pass
    close_old_connections()
