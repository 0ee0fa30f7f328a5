"""Jobs on real Celery workers (``celery -A config worker`` subprocesses), on Redis and on
RabbitMQ: a reindex fans out in chunks and adds up its progress on the job row, a pool
process killed with SIGKILL in the middle of a chunk loses nothing and embeds nothing
twice, a killed coordinator is taken over, and training runs on a worker."""

import os
import signal
import time

import pytest
from django.utils import timezone

from lookalike.jobs.models import Job
from recommendations.models import RecommenderModel
from tests.celery.conftest import Worker
from tests.recommendations.recsys_support import SMALL_ALS, two_groups
from tests.visualsearch.conftest import catalogue_image
from visualsearch.indexing import jobs as index_jobs
from visualsearch.models import ProductEmbedding

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def wait_for_job(job, worker: Worker, timeout=45):
    worker.wait_for(
        lambda: Job.objects.get(pk=job.pk).status in ("succeeded", "failed"), timeout, "the job"
    )
    job.refresh_from_db()
    assert job.status == "succeeded", f"{job.message}\n{worker.output()}"
    return job


def test_a_reindex_fans_out_in_chunks_and_adds_up_its_progress(on_celery, product_factory):
    products = [product_factory(image=catalogue_image(i)) for i in range(24)]
    job = wait_for_job(index_jobs.start_reindex("stale"), on_celery)
    assert job.result["chunks"] == 3 and job.result["deliveries"] == 3  # 24 in chunks of 8
    assert job.result["embedded"] == 24 and job.done == job.total == 24
    rows = ProductEmbedding.objects.filter(encoder="slowpixel")
    assert sorted(rows.values_list("product_id", flat=True)) == sorted(p.pk for p in products)
    # The chunks ran in the pool process that the coordinator was not waiting in.
    assert "Task lookalike.run_chunk" in on_celery.output()


def test_a_pool_process_killed_mid_chunk_loses_nothing(on_celery, product_factory, settings):
    products = [product_factory(image=catalogue_image(i)) for i in range(40)]
    job = index_jobs.start_reindex("stale")
    # 5 chunks of 8, each 2 batches of 4 at 0.3 s: kill the process embedding one.
    on_celery.wait_for(
        lambda: ProductEmbedding.objects.count() >= 10, 30, "a few batches to be committed"
    )
    coordinator = int(Job.objects.get(pk=job.pk).worker.rsplit(":", 1)[1])
    (victim,) = [p for p in on_celery.pool_processes() if p.pid != coordinator]
    os.kill(victim.pid, signal.SIGKILL)
    killed_at = timezone.now()
    before = dict(ProductEmbedding.objects.values_list("product_id", "computed_at"))
    assert len(before) % 4 == 0 and len(before) < 40  # whole batches only
    job = wait_for_job(job, on_celery)
    # The chunk went back to the queue and ran again; what it had committed was skipped.
    assert job.result["deliveries"] > job.result["chunks"] == 5, on_celery.output()
    assert "WorkerLostError" in on_celery.output() or "exited" in on_celery.output()
    rows = ProductEmbedding.objects.filter(encoder="slowpixel")
    assert rows.count() == 40 == len({r.product_id for r in rows})
    assert {r.product_id for r in rows} == {p.pk for p in products}
    after = dict(rows.values_list("product_id", "computed_at"))
    assert all(after[pk] == computed for pk, computed in before.items())
    assert sum(1 for c in after.values() if c < killed_at) == len(before)
    assert job.done == job.total == 40 and job.error_count == 0


def test_a_killed_coordinator_is_taken_over_and_nothing_is_embedded_twice(
    on_celery, product_factory
):
    """The pool process waiting for a reindex's chunks dies: Celery hands the job's message
    back, and the new delivery resumes the job once its chunks have stopped committing
    (they go on without it), so that no product is embedded by both jobs."""
    products = [product_factory(image=catalogue_image(i)) for i in range(64)]
    job = index_jobs.start_reindex("stale")
    on_celery.wait_for(lambda: ProductEmbedding.objects.exists(), 30, "a first batch")
    coordinator = int(Job.objects.get(pk=job.pk).worker.rsplit(":", 1)[1])
    os.kill(coordinator, signal.SIGKILL)
    killed_at = timezone.now()
    on_celery.wait_for(lambda: Job.objects.filter(resumed_from=job).exists(), 90, "a takeover")
    resumed = wait_for_job(Job.objects.get(resumed_from=job), on_celery)
    job.refresh_from_db()
    assert job.status == "failed" and job.result["taken_over_by"] == resumed.pk
    assert job.result["worker_lost"] and f"#{resumed.pk}" in job.message
    rows = ProductEmbedding.objects.filter(encoder="slowpixel")
    assert sorted(rows.values_list("product_id", flat=True)) == sorted(p.pk for p in products)
    written = list(rows.values_list("computed_at", flat=True))
    # The dead job's chunks went on after the kill, and the takeover waited for them: what
    # they committed, then what the resumed job embedded, add up to the catalogue once.
    assert any(at > killed_at for at in written), on_celery.output()
    assert sum(1 for at in written if at < resumed.created_at) == job.done
    assert job.done + resumed.result["embedded"] == 64, (job.done, resumed.result)


def test_training_runs_on_a_worker(on_celery, product_factory, category_factory):
    from recommendations.services import training

    two_groups(product_factory, category_factory)
    started = time.monotonic()
    job = wait_for_job(training.start_training(**SMALL_ALS, evaluate=False), on_celery, 60)
    assert job.worker.split(":")[1] != str(os.getpid())  # not this process
    assert job.result["version"] == 1 and job.done == job.total
    assert RecommenderModel.objects.get(is_active=True).version == 1
    assert time.monotonic() - started < 60
