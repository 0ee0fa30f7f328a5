"""Resuming a job whose process died when Celery hands its message back
(:mod:`lookalike.jobs.takeover`): only once it is provably dead, only jobs that failed that
way, once each, and not for ever. The same on real Celery workers: tests/celery."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from lookalike.jobs import locks, takeover
from lookalike.jobs.models import Job

HANDLER = "tests.jobs.handlers.count_to"

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def queued_only(settings):
    settings.LOOKALIKE_JOBS_BACKEND = "worker"  # resumed jobs stay queued
    settings.LOOKALIKE_JOBS_STALE_SECONDS = 30


def running(beat_seconds_ago, lock_key="count", **fields):
    beat = timezone.now() - timedelta(seconds=beat_seconds_ago)
    return Job.objects.create(
        handler=HANDLER,
        lock_key=lock_key,
        params={"n": 3},
        status=Job.Status.RUNNING,
        started_at=beat,
        heartbeat_at=beat,
        **fields,
    )


def other_session():
    import psycopg

    params = connection.get_connection_params()
    return psycopg.connect(**{k: v for k, v in params.items() if k != "cursor_factory"})


def test_a_job_whose_process_holds_its_lock_and_beats_is_alive():
    job = running(beat_seconds_ago=1)
    with other_session() as worker:
        worker.execute("SELECT pg_advisory_lock(%s, %s)", locks.job_lock("count"))
        assert takeover.take_over(job.pk) == (takeover.ALIVE, None)
        # Held without beats (a dead host's session PostgreSQL has not dropped yet): the
        # delivery is not given up but tried again later.
        Job.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
        assert takeover.take_over(job.pk) == (takeover.WAIT, None)
    job.refresh_from_db()
    assert job.status == Job.Status.RUNNING and not Job.objects.exclude(pk=job.pk).exists()


def test_a_dead_job_with_a_fresh_heartbeat_is_waited_for():
    """Its chunks may still be committing batches on other workers."""
    job = running(beat_seconds_ago=5)
    assert takeover.take_over(job.pk) == (takeover.WAIT, None)
    job.refresh_from_db()
    assert job.status == Job.Status.RUNNING


def test_a_dead_job_is_failed_and_resumed_once():
    job = running(beat_seconds_ago=60, done=2, total=3)
    outcome, new = takeover.take_over(job.pk)
    assert outcome == takeover.RESUMED
    assert new.resumed_from == job and new.status == Job.Status.QUEUED
    assert new.params == job.params and new.handler == job.handler
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED and (job.done, job.total) == (2, 3)
    assert job.result == {"worker_lost": True, "taken_over_by": new.pk}
    assert f"#{new.pk}" in job.message
    # A second delivery of the same message resumes nothing more.
    assert takeover.take_over(job.pk) == (takeover.NOTHING, None)
    assert Job.objects.count() == 2


def test_a_job_reaped_already_is_resumed_once_its_heartbeat_is_old():
    job = running(beat_seconds_ago=60)
    Job.objects.filter(pk=job.pk).update(
        status=Job.Status.FAILED, result={"worker_lost": True}, heartbeat_at=timezone.now()
    )
    assert takeover.take_over(job.pk) == (takeover.WAIT, None)
    Job.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=1))
    assert takeover.take_over(job.pk)[0] == takeover.RESUMED


@pytest.mark.parametrize(
    "status, result",
    [
        (Job.Status.FAILED, {}),  # failed by its own code: a person looks into it
        (Job.Status.SUCCEEDED, {"worker_lost": True}),
        (Job.Status.QUEUED, {}),
    ],
)
def test_only_jobs_failed_by_a_lost_process_are_resumed(status, result):
    job = running(beat_seconds_ago=600)
    Job.objects.filter(pk=job.pk).update(status=status, result=result)
    assert takeover.take_over(job.pk) == (takeover.NOTHING, None)
    assert takeover.take_over(job.pk + 1000) == (takeover.NOTHING, None)  # no such job
    assert Job.objects.count() == 1


def test_a_job_resumed_by_a_person_is_not_resumed_again():
    from lookalike.jobs import services

    job = running(beat_seconds_ago=600)
    Job.objects.filter(pk=job.pk).update(status=Job.Status.FAILED, result={"worker_lost": True})
    job.refresh_from_db()
    by_hand = services.resume(job)
    assert takeover.take_over(job.pk) == (takeover.NOTHING, None)
    assert list(Job.objects.exclude(pk=job.pk)) == [by_hand]


def test_a_job_that_keeps_killing_its_process_is_given_up(settings):
    settings.LOOKALIKE_JOBS_TAKEOVERS = 2
    job = running(beat_seconds_ago=60)
    resumed = []
    for _ in range(2):
        outcome, job = takeover.take_over(job.pk)
        assert outcome == takeover.RESUMED
        resumed.append(job)
        # The resumed job runs and its process dies again.
        beat = timezone.now() - timedelta(minutes=1)
        Job.objects.filter(pk=job.pk).update(status=Job.Status.RUNNING, heartbeat_at=beat)
    assert takeover.takeovers_in_a_row(Job.objects.get(pk=job.pk)) == 2
    assert takeover.take_over(job.pk) == (takeover.GIVEN_UP, None)
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED and "3 times in a row" in job.message
    assert not job.resumed_by.exists() and Job.objects.count() == 3


def test_what_was_asked_of_a_job_survives_its_failure_and_goes_to_its_resume():
    """A request a job accepted (services.ask) is not lost when the job fails, is reaped
    meanwhile, or is resumed: the new job starts with it."""
    from lookalike.jobs import services, worker
    from lookalike.jobs.runner import run_job

    job = services.enqueue(HANDLER, lock_key="count", params={"n": 3, "fail_at": 1})
    assert services.ask(job, "stale_pass")
    job = run_job(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED and job.result == {"asked:stale_pass": True}
    again = services.resume(job)
    assert again.result == {"asked:stale_pass": True}
    # The reaper merges its mark into the row: a request made while it decides stays.
    dead = running(beat_seconds_ago=60, lock_key="other")

    def asked_meanwhile(lock):
        services.ask(dead, "stale_pass")
        return True

    original, worker.locks.is_free = worker.locks.is_free, asked_meanwhile
    try:
        assert worker.reap_dead_jobs() == 1
    finally:
        worker.locks.is_free = original
    dead.refresh_from_db()
    assert dead.result == {"asked:stale_pass": True, "worker_lost": True}


def test_a_chunk_of_a_job_that_stopped_running_commits_nothing():
    """A batch slower than the heartbeat allows finds its job reaped and resumed: it rolls
    back rather than commit beside the resumed job."""
    from django.db import transaction

    from lookalike.jobs.fanout import ChunkContext, JobCancelled

    job = running(beat_seconds_ago=0, done=4)
    ChunkContext(job.pk, 0, 1).add(2)
    Job.objects.filter(pk=job.pk).update(status=Job.Status.FAILED)
    with pytest.raises(JobCancelled), transaction.atomic():
        ChunkContext(job.pk, 0, 1).add(3, [("7", "unreadable")])
    job.refresh_from_db()
    assert (job.done, job.error_count) == (6, 0)
