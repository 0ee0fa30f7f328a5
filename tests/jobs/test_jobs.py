from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from lookalike.jobs import locks, services
from lookalike.jobs.models import Job
from lookalike.jobs.worker import RETRY_DELAYS, reap_dead_jobs, work

HANDLER = "tests.jobs.handlers.count_to"


@pytest.mark.django_db(transaction=True)
def test_inline_job_runs_after_commit_and_records_progress(settings):
    job = services.enqueue(HANDLER, lock_key="count", params={"n": 7})
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED
    assert (job.done, job.total, job.percent) == (7, 7, 100)
    assert job.result == {"counted": 7}
    assert job.error_count == 3 and job.errors[0] == {"item": "0", "reason": "not divisible"}


@pytest.mark.django_db(transaction=True)
def test_failure_is_recorded_and_can_be_resumed(settings):
    job = services.enqueue(HANDLER, lock_key="count", params={"n": 5, "fail_at": 2})
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert "failed at 2" in job.message
    settings.LOOKALIKE_JOBS_BACKEND = "worker"
    again = services.resume(job)
    assert again.resumed_from == job and again.status == Job.Status.QUEUED
    assert again.params == job.params


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("fanned_out", [False, True])
def test_a_job_stopped_with_its_worker_ends_failed_keeping_its_progress(settings, fanned_out):
    """SIGTERM to a pool process raises SystemExit in the job: it ends failed and
    resumable at once (not "running" until reaped), and a fanned-out job keeps the counters
    its chunks wrote (a resume reads the chunks' bookkeeping)."""
    from lookalike.jobs.runner import run_job

    settings.LOOKALIKE_JOBS_BACKEND = "worker"  # queued; run here below
    job = services.enqueue(
        "tests.jobs.handlers.stopped_with_its_worker",
        lock_key="stopped",
        params={"fanned_out": fanned_out},
    )
    with pytest.raises(SystemExit):
        run_job(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED and job.finished_at is not None
    assert "worker was stopped" in job.message
    if fanned_out:
        assert (job.done, job.total, job.error_count) == (6, 10, 1)
        assert job.result == {"chunks": {"done": {"0": 3, "1": 3}}, "worker_lost": True}
    else:
        assert (job.done, job.total) == (2, 10)
        assert job.result == {"worker_lost": True}  # a redelivered task resumes it
    assert locks.is_free(locks.job_lock("stopped"))
    assert services.resume(job).status == Job.Status.QUEUED


@pytest.mark.django_db(transaction=True)
def test_second_job_with_same_key_is_refused(settings):
    settings.LOOKALIKE_JOBS_BACKEND = "worker"  # stays queued
    first = services.enqueue(HANDLER, lock_key="count", params={"n": 1})
    with pytest.raises(services.JobAlreadyRunning) as excinfo:
        services.enqueue(HANDLER, lock_key="count", params={"n": 1})
    assert excinfo.value.job == first
    assert "already queued" in str(excinfo.value)
    # Coalescing returns the queued job instead; another key is independent.
    assert services.enqueue(HANDLER, lock_key="count", params={"n": 1}, coalesce=True) == first
    assert services.enqueue(HANDLER, lock_key="other", params={"n": 1}) != first


@pytest.mark.django_db(transaction=True)
def test_worker_loop_runs_queued_jobs_in_order(settings):
    settings.LOOKALIKE_JOBS_BACKEND = "worker"
    a = services.enqueue(HANDLER, lock_key="a", params={"n": 2})
    b = services.enqueue(HANDLER, lock_key="b", params={"n": 3})
    work(once=True)
    assert [j.status for j in Job.objects.filter(pk__in=[a.pk, b.pk])] == ["succeeded"] * 2


@pytest.mark.django_db(transaction=True)
def test_run_jobs_prints_a_line_per_job_whatever_the_logging(settings):
    """A shop whose logging hides the plugins' INFO lines still sees what ran."""
    import io

    from django.core.management import call_command

    settings.LOOKALIKE_JOBS_BACKEND = "worker"
    done = services.enqueue(HANDLER, lock_key="a", params={"n": 2})
    failed = services.enqueue(HANDLER, lock_key="b", params={"n": 3, "fail_at": 1})
    out = io.StringIO()
    call_command("run_jobs", "--once", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0] == "Job worker started; waiting for jobs."
    assert lines[1].startswith(f"Job #{done.pk} (a) succeeded in ")
    assert lines[2].startswith(f"Job #{failed.pk} (b) failed in ") and "failed at 1" in lines[2]
    assert lines[3] == "Job worker stopped."


@pytest.mark.django_db(transaction=True)
def test_job_of_a_dead_worker_is_reaped_but_a_live_one_is_not(settings):
    settings.LOOKALIKE_JOBS_BACKEND = "worker"
    old = timezone.now() - timedelta(minutes=5)
    dead = Job.objects.create(
        handler=HANDLER, lock_key="dead", status="running", heartbeat_at=old, started_at=old
    )
    live = Job.objects.create(
        handler=HANDLER, lock_key="live", status="running", heartbeat_at=old, started_at=old
    )
    # A live worker holds the advisory lock of its job's key from another session.
    import psycopg

    params = connection.get_connection_params()
    with psycopg.connect(**{k: v for k, v in params.items() if k != "cursor_factory"}) as other:
        other.execute(
            "SELECT pg_advisory_lock(%s, %s)",
            locks.job_lock("live"),
        )
        assert reap_dead_jobs() == 1
        dead.refresh_from_db()
        live.refresh_from_db()
        assert dead.status == "failed" and "resume" in dead.message
        assert live.status == "running"


@pytest.mark.django_db
def test_only_marked_functions_can_be_queued():
    with pytest.raises(ValueError, match="not a job handler"):
        services.enqueue("tests.jobs.handlers.not_a_handler", lock_key="x")
    assert not Job.objects.exists()


def _other_session():
    import psycopg

    params = connection.get_connection_params()
    return psycopg.connect(**{k: v for k, v in params.items() if k != "cursor_factory"})


@pytest.mark.django_db(transaction=True)
def test_enqueue_never_waits_for_a_running_job(settings):
    """A product save during a long reindex is answered "already running" at once."""
    settings.LOOKALIKE_JOBS_BACKEND = "worker"
    running = Job.objects.create(
        handler=HANDLER, lock_key="count", status="running", heartbeat_at=timezone.now()
    )
    with _other_session() as worker:
        worker.execute(
            "SELECT pg_advisory_lock(%s, %s)",
            locks.job_lock("count"),
        )
        with connection.cursor() as cursor:
            cursor.execute("SET statement_timeout = '3s'")  # a wait fails instead of hanging
        try:
            with pytest.raises(services.JobAlreadyRunning) as excinfo:
                services.enqueue(HANDLER, lock_key="count", params={"n": 1}, coalesce=True)
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SET statement_timeout = 0")
    assert excinfo.value.job == running


@pytest.mark.django_db(transaction=True)
def test_a_queued_job_no_worker_takes_is_reaped(settings):
    settings.LOOKALIKE_JOBS_BACKEND = "worker"
    settings.LOOKALIKE_JOBS_QUEUED_TIMEOUT = 60
    job = services.enqueue(HANDLER, lock_key="count", params={"n": 1})
    assert reap_dead_jobs() == 0  # young: a worker may be about to take it
    Job.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(minutes=5))
    busy = Job.objects.create(
        handler=HANDLER, lock_key="other", status="running", heartbeat_at=timezone.now()
    )
    with _other_session() as worker:
        worker.execute(
            "SELECT pg_advisory_lock(%s, %s)",
            locks.job_lock("other"),
        )
        assert reap_dead_jobs() == 0  # a worker is busy with another job
    Job.objects.filter(pk=busy.pk).update(status="succeeded")
    assert reap_dead_jobs() == 1
    job.refresh_from_db()
    assert job.status == "failed" and "run_jobs" in job.message
    # The key is free again: a new job can start.
    assert services.enqueue(HANDLER, lock_key="count", params={"n": 1}).pk != job.pk


@pytest.mark.django_db(transaction=True)
def test_a_job_the_broker_cannot_take_is_failed_not_left_queued(settings):
    """Celery with a broker that is down: the job is marked failed at once."""
    from config.celery import app as current_app

    settings.LOOKALIKE_JOBS_BACKEND = "celery"
    saved = current_app.conf.broker_url
    current_app.conf.broker_url = "redis://127.0.0.1:9/0"  # nothing listens on port 9
    try:
        job = services.enqueue(HANDLER, lock_key="count", params={"n": 1})
    finally:
        current_app.conf.broker_url = saved
    job.refresh_from_db()
    assert job.status == "failed" and "could not be sent" in job.message
    assert services.enqueue(HANDLER, lock_key="count", params={"n": 1}, coalesce=True) != job


@pytest.mark.django_db(transaction=True)
def test_the_worker_loop_outlives_a_lost_database(settings, caplog):
    """The database goes away under the worker (its session is killed, as by a restart):
    one error is logged, and the worker carries on with the next job once it is back."""
    settings.LOOKALIKE_JOBS_BACKEND = "worker"
    job = services.enqueue(HANDLER, lock_key="count", params={"n": 2})
    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    with _other_session() as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    pauses = []
    work(once=True, sleep=pauses.append)
    assert pauses == [RETRY_DELAYS[0]]
    job.refresh_from_db()
    assert job.status == "succeeded"
    assert [r.levelname for r in caplog.records if "lost the database" in r.message] == ["ERROR"]


def test_celery_beat_reaps_dead_jobs_every_minute():
    """On Celery nothing else may come to reap a job whose worker died (no enqueue, no admin
    page): beat does, with the task the workers register."""
    from config.celery import app

    app.loader.import_default_modules()
    entry = app.conf.beat_schedule["reap-jobs"]
    assert entry["task"] == "lookalike.reap_jobs" and entry["task"] in app.tasks
    assert entry["schedule"] <= 60
