"""Celery entry point: the same :func:`lookalike.jobs.services.run_job` as the database worker."""

from celery import shared_task


@shared_task(name="lookalike.run_job", acks_late=True)
def run_job_task(job_id):
    from .services import reap_dead_jobs, run_job

    reap_dead_jobs()  # Celery has no worker loop: jobs of dead workers are reaped here too
    job = run_job(job_id)
    return job.status if job else None


@shared_task(name="lookalike.reap_jobs")
def reap_jobs_task():
    """For Celery beat: mark dead running and stuck queued jobs as failed (every minute,
    say), so that a key is never blocked by a job nobody will finish."""
    from .services import reap_dead_jobs

    return reap_dead_jobs()
