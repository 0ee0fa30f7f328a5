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
