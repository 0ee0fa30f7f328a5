"""Real Celery workers for the tests: ``celery -A config worker`` subprocesses on this
machine's Redis and RabbitMQ, one per broker and test module, on a queue of their own and
the pytest process's test database."""

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent

BROKERS = {
    "redis": os.environ.get("LOOKALIKE_TEST_REDIS_URL", "redis://127.0.0.1:6379/14"),
    "rabbitmq": os.environ.get("LOOKALIKE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//"),
}


def reachable(url):
    parts = urlsplit(url)
    default = 6379 if parts.scheme.startswith("redis") else 5672
    try:
        with socket.create_connection((parts.hostname, parts.port or default), timeout=1):
            return True
    except OSError:
        return False


class Worker:
    """A ``celery worker`` subprocess; its output is kept for the failure messages."""

    def __init__(self, broker, url, media_root, artifact_dir, db_name):
        self.broker, self.url = broker, url
        self.queue = f"lookalike-test-{broker}-{os.getpid()}-{time.monotonic_ns()}"
        self.media_root = media_root
        self.lines = []
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.celery.settings",
            "LOOKALIKE_DB_NAME": db_name,
            "LOOKALIKE_MEDIA_ROOT": str(media_root),
            "RECOMMENDATIONS_ARTIFACT_DIR": str(artifact_dir),
            "CELERY_BROKER_URL": url,
            "LOOKALIKE_CELERY_QUEUE": self.queue,
            "SLOW_ENCODER_SECONDS": "0.3",
            "PYTHONUNBUFFERED": "1",
        }
        env.pop("DJANGO_DEBUG", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker",
             "--queues", self.queue, "--concurrency", "2", "--pool", "prefork",
             "--hostname", f"{self.queue}@%h", "--loglevel", "INFO",
             "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        threading.Thread(target=self._read, daemon=True).start()
        self.wait_for(lambda: any(" ready." in line for line in self.lines), 60, "ready")

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)

    def output(self):
        return "".join(self.lines[-80:])

    def wait_for(self, condition, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"the worker exited:\n{self.output()}")
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}:\n{self.output()}")

    def pool_processes(self):
        import psutil

        return psutil.Process(self.proc.pid).children()

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module", params=sorted(BROKERS))
def celery_worker(request, django_db_setup, tmp_path_factory):
    """A worker on the module's broker (Redis, then RabbitMQ); skipped, saying why, where
    that broker does not answer."""
    from django.db import connection

    url = BROKERS[request.param]
    if not reachable(url):
        pytest.skip(f"no {request.param} broker at {url} (set LOOKALIKE_TEST_*_URL)")
    folder = tmp_path_factory.mktemp(f"celery-{request.param}")
    worker = Worker(
        request.param,
        url,
        media_root=folder / "media",
        artifact_dir=folder / "recommender",
        db_name=connection.settings_dict["NAME"],
    )
    yield worker
    worker.stop()


@pytest.fixture
def on_celery(celery_worker, settings):
    """This test process sends its jobs to ``celery_worker``: the Celery backend, the
    worker's broker and queue, and the worker's media and artefact folders."""
    from config.celery import app

    settings.LOOKALIKE_JOBS_BACKEND = "celery"
    settings.MEDIA_ROOT = celery_worker.media_root
    settings.VISUALSEARCH_ENCODERS = {"slowpixel": "tests.faults.encoders.SlowPixelEncoder"}
    settings.VISUALSEARCH_ENCODER = "slowpixel"
    settings.RECOMMENDATIONS_ARTIFACT_DIR = celery_worker.media_root.parent / "recommender"
    saved = app.conf.broker_url, app.conf.task_default_queue
    app.conf.broker_url, app.conf.task_default_queue = celery_worker.url, celery_worker.queue
    yield celery_worker
    app.conf.broker_url, app.conf.task_default_queue = saved
