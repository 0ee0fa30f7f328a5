"""Job handlers used by the job tests."""

from lookalike.jobs.services import job_handler


@job_handler
def count_to(ctx, n, fail_at=None):
    for i in range(n):
        if i == fail_at:
            raise RuntimeError(f"failed at {i}")
        if i % 3 == 0:
            ctx.error(i, "not divisible")
        ctx.progress(i + 1, n)
    return {"counted": n}


def not_a_handler(ctx):
    return {}


@job_handler
def stopped_with_its_worker(ctx, fanned_out=False):
    """Stops as a pool process does on SIGTERM; with ``fanned_out``, after chunks in other
    processes wrote the row's counters, as they do, without this process's copy."""
    from lookalike.jobs.models import Job

    ctx.progress(2, 10, force=True)
    if fanned_out:
        ctx.fanned_out = True  # as ctx.fan_out marks it
        Job.objects.filter(pk=ctx.job.pk).update(
            done=6, error_count=1, result={"chunks": {"done": {"0": 3, "1": 3}}}
        )
    raise SystemExit(143)
