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

On Celery a job can split its work into chunks that run on every worker at once
(:func:`fan_out`, :func:`run_chunk`): the job's own task coordinates, holding the key's lock
and the heartbeat as any job does, while each chunk adds what it committed to the row's
``done`` and errors in the transaction that commits it. A chunk may run twice (a worker lost
mid-chunk hands it to another), so chunk handlers skip what is already done and count only
what they write; a chunk that keeps killing its workers is given up after
``LOOKALIKE_JOBS_CHUNK_ATTEMPTS`` deliveries.

Nothing stays stuck: a queued job whose dispatch failed (the broker was down) is marked
failed at once, and a queued job that no worker picked up while no job was running (no
worker at all) is marked failed after ``LOOKALIKE_JOBS_QUEUED_TIMEOUT`` seconds. Reaping
runs before every enqueue, in every worker loop, before every Celery task and from the
admin's progress pages.
"""

import json
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

from ..conf import app_settings
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


def chunk_handler(func):
    """Mark a function as runnable on a chunk of a job (:func:`fan_out`): called as
    ``func(chunk_ctx, keys, **params)``, it must be idempotent."""
    func.is_chunk_handler = True
    return func


def _lock_id(lock_key):
    # Advisory lock keys are two signed 32-bit integers.
    value = zlib.crc32(lock_key.encode())
    return value - (1 << 32) if value >= (1 << 31) else value


def _backend():
    return app_settings.JOBS_BACKEND


def _queued_timeout():
    """Seconds a queued job may wait for a worker while no job runs at all."""
    return float(app_settings.JOBS_QUEUED_TIMEOUT)


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


def fans_out() -> bool:
    """Whether jobs spread their work over Celery workers (``LOOKALIKE_JOBS_BACKEND`` is
    ``"celery"``); the ``worker`` and ``inline`` backends run a job in one process."""
    return _backend() == "celery"


def send_tasks(name, calls):
    """Send the task registered as ``name`` once per argument tuple in ``calls`` over one
    broker connection (a fan-out of hundreds of chunks opens one), to the app's default
    queue as configured now. Never retries: a broker that is down raises at once.

    Tasks are sent by name, as Celery allows: this module never imports
    :mod:`lookalike.jobs.tasks`, which imports it (and Celery only when jobs run there).
    """
    from celery import current_app as app  # an optional dependency: LOOKALIKE_JOBS_BACKEND

    with app.connection_for_write() as conn:
        for args in calls:
            app.send_task(
                name, args, connection=conn, queue=app.conf.task_default_queue, retry=False
            )


def _dispatch(job_id):
    backend = _backend()
    if backend == "inline":
        run_job(job_id)
    elif backend == "celery":
        try:
            send_tasks("lookalike.run_job", [(job_id,)])
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

    def fan_out(self, handler, chunks, **params):
        """Run ``handler`` over ``chunks`` on the workers and wait; see :func:`fan_out`."""
        return fan_out(self, handler, chunks, params=params)


class ChunksStalled(Exception):
    """No chunk of a fanned-out job moved for ``LOOKALIKE_JOBS_CHUNK_STALL_SECONDS``."""


def _chunk_attempts():
    return int(app_settings.JOBS_CHUNK_ATTEMPTS)


def _stall_seconds():
    return float(app_settings.JOBS_CHUNK_STALL_SECONDS)


def fan_out(ctx, handler, chunks, *, params=None, poll=0.5, sleep=time.sleep):
    """Run ``handler(chunk_ctx, keys, **params)`` once per chunk of keys and wait for all.

    On Celery (:func:`fans_out`) every chunk is a ``lookalike.run_chunk`` task, taken by
    whichever worker is free; this process (the job's own task) keeps the job's lock and
    heartbeat meanwhile, so the job is exactly as exclusive, reapable and resumable as one
    that runs in one process. It needs a second worker slot besides its own (a worker with
    ``--concurrency 2``, or two workers). Elsewhere the chunks run here, one after another.

    Chunk bookkeeping lives in the job's ``result`` (``{"chunks": {"total", "done",
    "attempts"}}``) until the job ends; ``done`` and the errors on the row are what the
    chunks committed. Raises :class:`ChunksStalled` when nothing moved for
    ``LOOKALIKE_JOBS_CHUNK_STALL_SECONDS`` (no worker takes the chunks): the job fails and
    can be resumed.

    Returns ``{"chunks": n, "deliveries": d}``: ``d - n`` chunks ran again after losing
    their worker (or a database connection).
    """
    func = import_string(handler)
    if not getattr(func, "is_chunk_handler", False):
        raise ValueError(f"{handler} is not a chunk handler.")
    chunks = [list(keys) for keys in chunks if len(keys)]
    params = params or {}
    job = ctx.job
    state = {"chunks": {"total": len(chunks), "done": {}, "attempts": {}}}
    Job.objects.filter(pk=job.pk).update(result=state, heartbeat_at=timezone.now())
    if not fans_out():
        for index, keys in enumerate(chunks):
            run_chunk(job.pk, index, handler, keys, params)
    elif chunks:
        send_tasks(
            "lookalike.run_chunk",
            [(job.pk, i, handler, keys, params) for i, keys in enumerate(chunks)],
        )
        logger.info(
            "Job %s fanned out into %d chunks",
            job.pk,
            len(chunks),
            extra={"job_id": job.pk, "handler": job.handler, "chunks": len(chunks)},
        )
        _wait_for_chunks(job, len(chunks), poll, sleep)
    ctx.job.refresh_from_db(fields=["done", "error_count", "errors", "result"])
    attempts = ctx.job.result.get("chunks", {}).get("attempts", {})
    return {"chunks": len(chunks), "deliveries": sum(attempts.values())}


def _wait_for_chunks(job, total, poll, sleep):
    last, moved_at = None, time.monotonic()
    while True:
        status, result, done = (
            Job.objects.filter(pk=job.pk).values_list("status", "result", "done").get()
        )
        if status != Job.Status.RUNNING:
            raise JobCancelled(f"The job was marked {status} while its chunks ran.")
        chunks = (result or {}).get("chunks", {})
        finished = len(chunks.get("done", {}))
        if finished >= total:
            return
        seen = (finished, done, sum(chunks.get("attempts", {}).values()))
        if seen != last:
            last, moved_at = seen, time.monotonic()
        elif time.monotonic() - moved_at > _stall_seconds():
            raise ChunksStalled(
                f"{total - finished} of {total} chunks did not move for {_stall_seconds():.0f} "
                "s: is a Celery worker with a free slot consuming the queue? Resume the job "
                "when one is."
            )
        Job.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now())
        sleep(poll)


class ChunkContext:
    """What a chunk handler gets: the job's parameters and :meth:`add`, which adds the
    chunk's committed work to the job row."""

    def __init__(self, job_id, index, attempt):
        self.job_id = job_id
        self.index = index
        self.attempt = attempt

    def add(self, done, errors=()):
        """Add ``done`` items and ``errors`` (``(item, reason)`` pairs) to the job row in one
        UPDATE. Call it inside the transaction that commits that work: a chunk that runs
        again after a crash then counts only what it writes itself."""
        errors = [{"item": str(item), "reason": str(reason)} for item, reason in errors]
        table = connection.ops.quote_name(Job._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} SET done = done + %s, error_count = error_count + %s, "
                "errors = CASE WHEN jsonb_array_length(errors) >= %s THEN errors "
                "ELSE errors || %s::jsonb END, heartbeat_at = %s WHERE id = %s",
                [
                    done,
                    len(errors),
                    MAX_STORED_ERRORS,
                    json.dumps(errors[:MAX_STORED_ERRORS]),
                    timezone.now(),
                    self.job_id,
                ],
            )


def _start_chunk(job_id, index):
    """Count a delivery of chunk ``index``; its number, or ``None`` when the chunk is done
    or the job no longer runs (a late copy of a chunk, or a job that failed meanwhile)."""
    table = connection.ops.quote_name(Job._meta.db_table)
    key = str(index)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET result = jsonb_set(result, ARRAY['chunks', 'attempts', %s], "
            "to_jsonb(COALESCE((result #>> ARRAY['chunks', 'attempts', %s])::int, 0) + 1)), "
            "heartbeat_at = %s "
            "WHERE id = %s AND status = %s AND result ? 'chunks' "
            "AND NOT (result #> ARRAY['chunks', 'done']) ? %s "
            "RETURNING (result #>> ARRAY['chunks', 'attempts', %s])::int",
            [key, key, timezone.now(), job_id, Job.Status.RUNNING, key, key],
        )
        row = cursor.fetchone()
    return row[0] if row else None


def _finish_chunk(job_id, index):
    """Mark chunk ``index`` done (idempotent: a key set twice is set once)."""
    table = connection.ops.quote_name(Job._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET result = jsonb_set(result, ARRAY['chunks', 'done', %s], "
            "'true'::jsonb), heartbeat_at = %s WHERE id = %s AND result ? 'chunks'",
            [str(index), timezone.now(), job_id],
        )


def run_chunk(job_id, index, handler, keys, params=None):
    """Run chunk ``index`` of job ``job_id``: ``handler(chunk_ctx, keys, **params)``.

    Returns ``"done"``, ``"skipped"`` (already done, or the job no longer runs) or
    ``"abandoned"`` (delivered more than ``LOOKALIKE_JOBS_CHUNK_ATTEMPTS`` times: its
    workers kept dying on it, so it is recorded as one error and its items stay for the next
    run, rather than killing workers for ever).
    """
    from lookalike.routing import use_primary

    func = import_string(handler)
    if not getattr(func, "is_chunk_handler", False):
        raise ValueError(f"{handler} is not a chunk handler.")
    attempt = _start_chunk(job_id, index)
    if attempt is None:
        return "skipped"
    ctx = ChunkContext(job_id, index, attempt)
    if attempt > _chunk_attempts():
        logger.error(
            "Chunk %s of job %s abandoned after %s deliveries",
            index,
            job_id,
            attempt - 1,
            extra={"job_id": job_id, "chunk": index},
        )
        ctx.add(0, [(f"chunk {index}", f"abandoned after {attempt - 1} deliveries")])
        _finish_chunk(job_id, index)
        return "abandoned"
    with use_primary():
        func(ctx, keys, **(params or {}))
    _finish_chunk(job_id, index)
    return "done"


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
    from lookalike.routing import use_primary

    job = Job.objects.get(pk=job_id)
    lock = (_LOCK_NAMESPACE, _lock_id(job.lock_key))
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s, %s)", lock)
    ctx = JobContext(job)
    log = {"job_id": job.pk, "handler": job.handler, "worker": job.worker}
    logger.info("Job %s started", job.pk, extra=log)
    started = time.monotonic()
    try:
        func = import_string(job.handler)
        # Jobs read what they (and the shop) just wrote: never a replica that lags.
        with use_primary():
            result = func(ctx, **job.params)
    except Exception as exc:  # the job records the failure; the worker lives on
        logger.exception("Job %s failed", job.pk, extra=log)
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
