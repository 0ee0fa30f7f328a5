"""Celery entry point: the same :func:`lookalike.jobs.services.run_job` as the database worker."""

from celery import shared_task


@shared_task(name="lookalike.run_job", acks_late=True)
def run_job_task(job_id):
    from .services import run_job

    job = run_job(job_id)
    return job.status if job else None
