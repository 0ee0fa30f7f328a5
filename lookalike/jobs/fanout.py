"""A job's work split into chunks that run on every Celery worker at once.

The job's own task coordinates (:func:`fan_out`), holding the key's lock and the heartbeat
as any job does, while each chunk (:func:`run_chunk`, the task ``lookalike.run_chunk``)
adds what it committed to the row's ``done`` and errors in the transaction that commits
it. A chunk may run twice (a worker lost mid-chunk hands it to another), so chunk handlers
skip what is already done and count only what they write; a chunk that keeps killing its
workers is given up after ``LOOKALIKE_JOBS_CHUNK_ATTEMPTS`` deliveries.

Tasks are sent by name (:func:`send_tasks`), as Celery allows: no module of the job
machinery imports :mod:`lookalike.jobs.tasks`, which imports them (and Celery only when
jobs run there).
"""

import json
import logging
import time

from django.db import connection
from django.utils import timezone
from django.utils.module_loading import import_string
from django.utils.translation import gettext, ngettext

from ..conf import app_settings
from .models import Job

logger = logging.getLogger(__name__)


class JobCancelled(Exception):
    pass


class ChunksStalled(Exception):
    """No chunk of a fanned-out job moved for ``LOOKALIKE_JOBS_CHUNK_STALL_SECONDS``."""


def fans_out() -> bool:
    """Whether jobs spread their work over Celery workers (``LOOKALIKE_JOBS_BACKEND`` is
    ``"celery"``); the ``worker`` and ``inline`` backends run a job in one process."""
    return app_settings.JOBS_BACKEND == "celery"


def send_tasks(name, calls):
    """Send the task registered as ``name`` once per argument tuple in ``calls`` over one
    broker connection (a fan-out of hundreds of chunks opens one), to the app's default
    queue as configured now. Never retries: a broker that is down raises at once."""
    from celery import current_app as app  # an optional dependency: LOOKALIKE_JOBS_BACKEND

    with app.connection_for_write() as conn:
        for args in calls:
            app.send_task(
                name, args, connection=conn, queue=app.conf.task_default_queue, retry=False
            )


def _chunk_attempts():
    return int(app_settings.JOBS_CHUNK_ATTEMPTS)


def _stall_seconds():
    return float(app_settings.JOBS_CHUNK_STALL_SECONDS)


def _chunk_handler(handler):
    func = import_string(handler)
    if not getattr(func, "is_chunk_handler", False):
        raise ValueError(f"{handler} is not a chunk handler.")
    return func


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
    _chunk_handler(handler)
    chunks = [list(keys) for keys in chunks if len(keys)]
    params = params or {}
    job = ctx.job
    state = {"chunks": {"total": len(chunks), "done": {}, "attempts": {}}}
    table = connection.ops.quote_name(Job._meta.db_table)
    with connection.cursor() as cursor:
        # Merged: what others asked of the job (services.ask) stays in its result.
        cursor.execute(
            f"UPDATE {table} SET result = result || %s::jsonb, heartbeat_at = %s WHERE id = %s",
            [json.dumps(state), timezone.now(), job.pk],
        )
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
            raise JobCancelled(
                gettext("The job was marked “%(status)s” while its chunks ran.")
                % {"status": Job.Status(status).label}
            )
        chunks = (result or {}).get("chunks", {})
        finished = len(chunks.get("done", {}))
        if finished >= total:
            return
        seen = (finished, done, sum(chunks.get("attempts", {}).values()))
        if seen != last:
            last, moved_at = seen, time.monotonic()
        elif time.monotonic() - moved_at > _stall_seconds():
            raise ChunksStalled(
                ngettext(
                    "%(left)s of %(total)s chunk did not move for %(seconds)s s: is a Celery "
                    "worker with a free slot consuming the queue? Resume the job when one is.",
                    "%(left)s of %(total)s chunks did not move for %(seconds)s s: is a Celery "
                    "worker with a free slot consuming the queue? Resume the job when one is.",
                    total - finished,
                )
                % {"left": total - finished, "total": total, "seconds": f"{_stall_seconds():.0f}"}
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
        again after a crash then counts only what it writes itself.

        Raises :class:`JobCancelled` when the job no longer runs (failed, reaped, resumed
        as another job), which rolls the caller's transaction back: a batch that took
        longer than the job's heartbeat allows must not commit beside the resumed job,
        which plans the same products."""
        errors = [{"item": str(item), "reason": str(reason)} for item, reason in errors]
        table = connection.ops.quote_name(Job._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} SET done = done + %s, error_count = error_count + %s, "
                "errors = CASE WHEN jsonb_array_length(errors) >= %s THEN errors "
                "ELSE errors || %s::jsonb END, heartbeat_at = %s WHERE id = %s AND status = %s",
                [
                    done,
                    len(errors),
                    Job.MAX_STORED_ERRORS,
                    json.dumps(errors[: Job.MAX_STORED_ERRORS]),
                    timezone.now(),
                    self.job_id,
                    Job.Status.RUNNING,
                ],
            )
            if cursor.rowcount != 1:
                raise JobCancelled(
                    gettext("Job #%(id)s no longer runs: this chunk's batch is not kept.")
                    % {"id": self.job_id}
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

    Returns ``"done"``, ``"skipped"`` (already done, or the job no longer runs),
    ``"cancelled"`` (the job stopped running while the chunk ran) or
    ``"abandoned"`` (delivered more than ``LOOKALIKE_JOBS_CHUNK_ATTEMPTS`` times: its
    workers kept dying on it, so it is recorded as one error and its items stay for the next
    run, rather than killing workers for ever).
    """
    job = Job.objects.filter(pk=job_id).only("language").first()
    if job is None:
        return "skipped"
    # The chunk's errors in the job's language, as its own messages (Job.in_its_language).
    with job.in_its_language():
        return _run_chunk(job_id, index, handler, keys, params)


def _run_chunk(job_id, index, handler, keys, params):
    from lookalike.routing import use_primary

    func = _chunk_handler(handler)
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
        item = gettext("chunk %(index)s") % {"index": index}
        reason = ngettext(
            "abandoned after %(count)s delivery",
            "abandoned after %(count)s deliveries",
            attempt - 1,
        ) % {"count": attempt - 1}
        ctx.add(0, [(item, reason)])
        _finish_chunk(job_id, index)
        return "abandoned"
    try:
        with use_primary():
            func(ctx, keys, **(params or {}))
    except JobCancelled:  # the job failed meanwhile: its batch in progress was rolled back
        logger.warning(
            "Chunk %s of job %s stopped: the job no longer runs",
            index,
            job_id,
            extra={"job_id": job_id, "chunk": index},
        )
        return "cancelled"
    _finish_chunk(job_id, index)
    return "done"
