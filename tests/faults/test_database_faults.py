"""The database goes away under a request and under a job: one clean error, then recovery.

A restart of PostgreSQL drops every connection; terminating the session of the request or
of the job (``pg_terminate_backend``) is that, for this process alone, without stopping the
server other test runs share.
"""

import pytest
from django.db import connection

from lookalike.jobs import services as job_services
from lookalike.jobs.models import Job
from lookalike.jobs.services import job_handler
from lookalike.jobs.worker import work

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("pixel_encoder")]


def lose_the_database(*args, **kwargs):
    """What a restart does to the session in use: it is terminated."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")


def test_a_request_that_loses_the_database_is_one_clean_503(client, catalogue, monkeypatch):
    from visualsearch.search import remembered

    product = catalogue[0]
    # The search under the kept answers (nothing is kept yet for this product).
    monkeypatch.setattr(remembered, "search_similar", lose_the_database)
    page = client.get(f"/visual/similar/{product.pk}/")
    assert page.status_code == 503 and page["Retry-After"]
    assert "try again" in page.content.decode()
    api = client.get(f"/api/products/{product.pk}/similar/")
    assert api.status_code == 503 and "try again" in api.json()["detail"]
    monkeypatch.undo()
    # The next request opens a new connection and is served.
    assert client.get(f"/visual/similar/{product.pk}/").status_code == 200


@job_handler
def job_that_loses_the_database(ctx):
    ctx.progress(1, 2)
    lose_the_database()
    ctx.progress(2, 2)
    return {}


def test_a_job_that_loses_the_database_fails_cleanly_and_resumes(settings):
    settings.LOOKALIKE_JOBS_BACKEND = "worker"
    handler = f"{__name__}.job_that_loses_the_database"
    job = job_services.enqueue(handler, lock_key="faults")
    work(once=True, sleep=lambda seconds: None)
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert "database connection was lost" in job.message
    # Its key is free again (no lock left behind): it can be resumed at once.
    assert job_services.resume(job).status == Job.Status.QUEUED


def test_a_job_reaped_while_it_lost_the_database_keeps_the_reaper_s_word(settings, monkeypatch):
    """Its lock went with the lost session, so a reaper may have failed it and had it
    resumed meanwhile: the process's late outcome does not overwrite that."""
    from lookalike.jobs import runner

    settings.LOOKALIKE_JOBS_BACKEND = "worker"
    job = job_services.enqueue(f"{__name__}.job_that_loses_the_database", lock_key="faults")
    drop = runner.drop_connection

    def reaped_meanwhile():
        drop()
        Job.objects.filter(pk=job.pk).update(
            status=Job.Status.FAILED,
            message="resumed as #999",
            result={"worker_lost": True, "taken_over_by": 999},
        )

    monkeypatch.setattr(runner, "drop_connection", reaped_meanwhile)
    work(once=True, sleep=lambda seconds: None)
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED and job.message == "resumed as #999"
    assert job.result == {"worker_lost": True, "taken_over_by": 999}
