"""A job worker killed with SIGKILL in the middle of a batch loses nothing: the job is
reaped as dead, resumed, and every product ends up embedded exactly once."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from lookalike.jobs import services as job_services
from lookalike.jobs.models import Job
from lookalike.jobs.worker import reap_dead_jobs
from tests.visualsearch.conftest import catalogue_image
from visualsearch.indexing import jobs as index_jobs
from visualsearch.models import ProductEmbedding

ROOT = Path(__file__).resolve().parent.parent.parent
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def start_worker():
    from django.conf import settings

    env = {
        **os.environ,
        "LOOKALIKE_MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "DJANGO_SETTINGS_MODULE": "tests.faults.settings",
        "LOOKALIKE_DB_NAME": connection.settings_dict["NAME"],
        "SLOW_ENCODER_SECONDS": "0.3",
    }
    return subprocess.Popen(
        [sys.executable, "manage.py", "run_jobs", "--poll", "0.2"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip


def wait_for(condition, timeout=60.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_killed_worker_loses_nothing_and_embeds_nothing_twice(product_factory, settings):
    settings.VISUALSEARCH_ENCODERS = {"slowpixel": "tests.faults.encoders.SlowPixelEncoder"}
    settings.VISUALSEARCH_ENCODER = "slowpixel"
    settings.LOOKALIKE_JOBS_BACKEND = "worker"
    products = [product_factory(image=catalogue_image(i)) for i in range(40)]
    worker = start_worker()
    try:
        job = index_jobs.start_reindex("stale")
        try:
            wait_for(
                lambda: ProductEmbedding.objects.count() >= 8,
                what="a few batches to be committed",
            )
        except AssertionError:
            job.refresh_from_db()
            worker.kill()
            output = worker.communicate()[0].decode()[-3000:]
            raise AssertionError(f"job {job.status}: {job.message}\n{output}") from None
        worker.send_signal(signal.SIGKILL)  # in the middle of a later batch
        worker.wait(10)
        killed_at = timezone.now()
        done_before = ProductEmbedding.objects.count()
        assert 8 <= done_before < 40
        assert done_before % 4 == 0  # whole batches only: nothing half-written
        job.refresh_from_db()
        assert job.status == "running"  # nobody knows yet
        assert reap_dead_jobs(stale_after=timezone.timedelta(0)) == 1
        job.refresh_from_db()
        assert job.status == "failed" and "resume" in job.message
        resumed = job_services.resume(job)
        worker = start_worker()
        wait_for(
            lambda: Job.objects.get(pk=resumed.pk).status in ("succeeded", "failed"),
            what="the resumed job",
        )
        resumed.refresh_from_db()
        assert resumed.status == "succeeded", resumed.message
    finally:
        worker.kill()
        worker.wait(10)
    rows = ProductEmbedding.objects.filter(encoder="slowpixel")
    assert rows.count() == 40 == len({r.product_id for r in rows})
    assert {r.product_id for r in rows} == {p.pk for p in products}
    # The products committed before the kill were not embedded again.
    assert rows.filter(computed_at__lt=killed_at).count() == done_before
