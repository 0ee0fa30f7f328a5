"""Reindexing as a background job (admin buttons, product saves).

Every reindex shares the lock key :data:`LOCK_KEY`, so only one runs at a time; a job whose
worker died is resumed with ``lookalike.jobs.services.resume`` and, since each batch is committed,
only finishes what is left.

On Celery (``LOOKALIKE_JOBS_BACKEND = "celery"``) the job fans out: its task works out the
products to embed and waits while every free worker embeds chunks of them
(:func:`reindex_chunk`); see :mod:`lookalike.jobs.services` and
:func:`.service.reindex_fanned_out`.

Job rows and chunk messages name the handlers by the package's names for them
(:data:`HANDLER`, :data:`.service.CHUNK_HANDLER`), which do not change when a module inside
the package does.
"""

from __future__ import annotations

import logging
import time

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext, ngettext, pgettext_lazy

from lookalike.jobs.models import Job
from lookalike.jobs.services import (
    JobAlreadyRunning,
    ask,
    chunk_handler,
    enqueue,
    fans_out,
    job_handler,
)

from ..conf import app_settings
from .service import LOCK_KEY, MODES, embed_chunk, reindex, reindex_fanned_out
from .state import check_ids

__all__ = [
    "HANDLER",
    "LOCK_KEY",
    "reindex_chunk",
    "reindex_job",
    "request_stale_reindex",
    "start_reindex",
]

HANDLER = "visualsearch.indexing.reindex_job"

logger = logging.getLogger(__name__)

#: Extra passes of a stale job, for products saved while it ran (their own trigger was
#: refused because this job was running).
STALE_PASSES = 3
#: What :func:`request_stale_reindex` asks of an active reindex: a stale pass at its end.
STALE_PASS = "stale_pass"


@job_handler
def reindex_job(ctx, mode="stale", encoder=None, ids=None, started_before=None):
    """Job handler: :func:`.service.reindex` with progress and errors on the job row."""
    started = parse_datetime(started_before) if started_before else None
    if fans_out():
        result = reindex_fanned_out(
            ctx.fan_out,
            mode,
            ids=ids,
            encoder=encoder,
            progress=ctx.progress,
            started_before=started,
        )
    else:
        result = reindex(
            mode,
            ids=ids,
            encoder=encoder,
            progress=ctx.progress,
            error=ctx.error,
            started_before=started,
        )
    if mode == "stale":
        for _ in range(STALE_PASSES):
            if not _stale_pass(ctx, encoder, result):
                break
    # Products saved while this job ran, whose own trigger it refused: an ``ids`` or
    # ``all`` job looks for them only when asked (request_stale_reindex).
    while ctx.asked(STALE_PASS):
        _stale_pass(ctx, None, result)
    ctx.progress(result["candidates"], result["candidates"], _summary(result), force=True)
    return result


def _stale_pass(ctx, encoder, result):
    """A cheap database-only pass over what changed during the run, added to ``result``;
    whether it found anything."""
    more = reindex(
        "stale", encoder=encoder, error=ctx.error, verify_checksums=False, build_index=False
    )
    for key in ("candidates", "embedded", "failed", "skipped"):
        result[key] += more[key]
    return bool(more["candidates"])


def request_stale_reindex(attempts=10, wait=0.2):
    """Have the products whose image changed embedded: queue a stale reindex, or ask the
    reindex that is active to look for changes before it finishes (one of another mode would
    not). Returns the job that will, or ``None`` if none would take the request (a job
    finishing all along: ``reindex --stale`` catches up)."""
    for _ in range(attempts):
        try:
            job = start_reindex("stale", coalesce=True)
        except JobAlreadyRunning as exc:
            job = exc.job
        if job.status == Job.Status.QUEUED and job.params.get("mode") == "stale":
            return job  # it has yet to look for changes
        if ask(job, STALE_PASS):
            return job
        time.sleep(wait)  # it looked for the last time: its key is free in a moment
    logger.warning("A product changed while reindex jobs kept finishing; it was not queued.")
    return None


@chunk_handler
def reindex_chunk(ctx, keys, encoder, since):
    """Chunk handler of a fanned-out reindex: :func:`.service.embed_chunk`, its progress and
    failures added to the job row in each batch's transaction."""
    return embed_chunk(keys, encoder, parse_datetime(since), add=ctx.add)


#: A reindex's mode as the admin's "Mode" column and a finished job's message name it.
MODE_LABELS = {
    "stale": pgettext_lazy("reindex mode", "stale"),
    "all": pgettext_lazy("reindex mode", "all"),
    "ids": pgettext_lazy("reindex mode", "selected products"),
}


def _summary(result):
    """The finished job's message, in the language active where the job ran (the site's
    ``LANGUAGE_CODE`` in a worker): each count is a phrase of its own for translators."""
    where = {"encoder": result["encoder"], "mode": MODE_LABELS.get(result["mode"], result["mode"])}
    no_image = result.get("no_image") or 0
    if not result["candidates"]:
        # A stale reindex with nothing to embed still did its work (orphans removed, copies
        # caught up): the row says the index was current rather than showing "0 / 0".
        if no_image:
            return ngettext(
                "Nothing to reindex: every vector is up to date; %(count)s product has no "
                "image (%(encoder)s, %(mode)s).",
                "Nothing to reindex: every vector is up to date; %(count)s products have no "
                "image (%(encoder)s, %(mode)s).",
                no_image,
            ) % {"count": no_image, **where}
        return (
            gettext("Nothing to reindex: every vector is up to date (%(encoder)s, %(mode)s).")
            % where
        )
    counts = [
        ngettext("%(count)s embedded", "%(count)s embedded", result["embedded"])
        % {"count": result["embedded"]},
        ngettext("%(count)s failed", "%(count)s failed", result["failed"])
        % {"count": result["failed"]},
    ]
    if result.get("skipped"):
        counts.append(
            ngettext("%(count)s skipped", "%(count)s skipped", result["skipped"])
            % {"count": result["skipped"]}
        )
    if no_image:
        counts.append(
            ngettext("%(count)s without an image", "%(count)s without an image", no_image)
            % {"count": no_image}
        )
    return gettext("%(counts)s (%(encoder)s, %(mode)s).") % {
        "counts": gettext(", ").join(counts),
        **where,
    }


def start_reindex(mode="stale", user=None, encoder=None, ids=None, coalesce=False):
    """Queue a reindex job; raises ``lookalike.jobs.services.JobAlreadyRunning`` if one is active.

    ``mode="all"`` and ``"ids"`` record their start time, so that a resumed job keeps what
    was embedded before it stopped. Unknown modes, encoders and product ids are refused
    here, before a job row exists.
    """
    from ..encoders import available_encoders

    if mode not in MODES:
        raise ValueError(
            gettext("The mode must be one of %(modes)s, not “%(mode)s”.")
            % {"modes": ", ".join(MODES), "mode": mode}
        )
    encoder = encoder or app_settings.ENCODER
    if encoder not in available_encoders():
        raise ValueError(gettext("There is no encoder named “%(name)s”.") % {"name": encoder})
    params = {"mode": mode, "encoder": encoder}
    if mode == "ids":
        # JSON keeps integer keys as they are and UUID keys as text; the job parses them back.
        params["ids"] = [pk if isinstance(pk, int) else str(pk) for pk in check_ids(ids)]
    if mode in ("all", "ids"):
        params["started_before"] = timezone.now().isoformat()
    return enqueue(HANDLER, lock_key=LOCK_KEY, params=params, user=user, coalesce=coalesce)
