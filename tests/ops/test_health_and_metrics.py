"""The operations endpoints: /health/ (django-health-check with the plugins' checks) and
/metrics (django-prometheus plus the plugins' collectors), and JSON-lines logs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.recommendations.recsys_support import SMALL_ALS, two_groups

ROOT = Path(__file__).resolve().parent.parent.parent


def health(client, url="/health/"):
    """GET /health/ from a thread of its own: the view is async, and Django cannot run it
    from a thread where an event loop runs (the browser tests' Playwright leaves one)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        response = pool.submit(client.get, url, HTTP_ACCEPT="application/json").result()
    return response.status_code, response.json()


# The checks run in threads, on connections of their own: the test's rows must be committed.
@pytest.mark.django_db(transaction=True)
def test_health_checks_the_database_cache_broker_and_models(
    client, catalogue, product_factory, category_factory, settings, tmp_path
):
    from recommendations.services import training

    settings.RECOMMENDATIONS_ARTIFACT_DIR = tmp_path / "recommender"
    status, checks = health(client)
    # Vectors of the configured encoder exist; no recommender was trained yet.
    assert checks["Database(alias='default')"] == "OK"
    assert checks["Cache(alias='default')"] == "OK"
    assert checks["JobBroker()"] == "OK"  # the inline backend needs none
    assert checks["VisualEncoder()"] == "OK"
    assert "No recommender model is active" in checks["Recommender()"]
    assert status == 500
    # The load balancer's probe: the shop serves pages without a model, so it is ready.
    assert health(client, "/health/ready/") == (200, {"Database(alias='default')": "OK"})
    two_groups(product_factory, category_factory)
    training.train(**SMALL_ALS, evaluate=False)
    status, checks = health(client)
    assert status == 200, checks
    assert set(checks.values()) == {"OK"}


@pytest.mark.django_db(transaction=True)
def test_health_fails_when_the_broker_is_down(client, settings):
    from config.celery import app

    settings.LOOKALIKE_JOBS_BACKEND = "celery"
    saved = app.conf.broker_url
    app.conf.broker_url = "redis://127.0.0.1:9/0"  # nothing listens on port 9
    try:
        status, checks = health(client)
        ready, _ = health(client, "/health/ready/")
    finally:
        app.conf.broker_url = saved
    assert status == 500 and ready == 200  # pages are served without the broker
    assert "Broker unreachable (OperationalError)" in checks["JobBroker()"]
    assert "127.0.0.1" not in checks["JobBroker()"]  # no connection string in the answer


@pytest.mark.django_db(transaction=True)
def test_health_fails_while_a_job_waits_for_a_worker_that_never_comes(client):
    """A broker that answers says nothing of the workers behind it: a job queued a minute
    ago that no worker took, while none runs, fails the check; a running job passes it."""
    from datetime import timedelta

    from django.utils import timezone

    from lookalike.jobs.models import Job

    handler = "tests.jobs.handlers.stopped_with_its_worker"
    fresh = Job.objects.create(handler=handler, lock_key="a")
    assert health(client)[1]["JobWorkers()"] == "OK"  # a worker may be about to take it
    Job.objects.filter(pk=fresh.pk).update(created_at=timezone.now() - timedelta(minutes=3))
    told = health(client)[1]["JobWorkers()"]
    assert f"Job #{fresh.pk} has waited 18" in told and "is a worker running?" in told
    # A "running" job whose heartbeat stopped an hour ago: its worker died, and took the
    # reaper with it (it runs in workers): not a sign of life.
    dead = timezone.now() - timedelta(hours=1)
    Job.objects.create(handler=handler, lock_key="b", status="running", heartbeat_at=dead)
    assert "is a worker running?" in health(client)[1]["JobWorkers()"]
    Job.objects.create(handler=handler, lock_key="c", status="running", heartbeat_at=timezone.now())
    assert health(client)[1]["JobWorkers()"] == "OK"  # busy, not gone
    assert health(client)[1]["Replicas()"] == "OK"  # none configured


@pytest.mark.django_db
def test_metrics_show_requests_searches_jobs_and_model_versions(client, catalogue):
    from lookalike.jobs.models import Job

    Job.objects.create(handler="x", lock_key="visualsearch.reindex", status="running", total=9)
    assert client.get(f"/api/products/{catalogue[0].pk}/similar/").status_code == 200
    text = client.get("/metrics").content.decode()
    assert "django_http_requests_latency_seconds_by_view_method" in text  # django-prometheus
    assert 'lookalike_search_request_seconds_count{endpoint="similar_api",status="200"}' in text
    assert 'lookalike_jobs{lock_key="visualsearch.reindex",status="running"} 1.0' in text
    assert "lookalike_job_total{" in text
    assert 'visualsearch_vectors{configured="true",encoder="pixel"' in text
    assert "lookalike_jobs_failing{" not in text  # nothing failed


@pytest.mark.django_db
def test_failing_jobs_count_until_a_later_one_of_their_key_succeeds(client):
    from datetime import timedelta

    from django.utils import timezone

    from lookalike.jobs.models import Job

    now = timezone.now()

    def job(key, status, minutes_ago):
        at = now - timedelta(minutes=minutes_ago)
        return Job.objects.create(handler="x", lock_key=key, status=status, finished_at=at)

    job("visualsearch.reindex", "failed", 30)
    job("visualsearch.reindex", "succeeded", 20)  # set it right
    job("visualsearch.reindex", "failed", 10)
    job("recommendations.train", "failed", 5)
    job("recommendations.train", "failed", 1)
    text = client.get("/metrics").content.decode()
    assert 'lookalike_jobs_failing{lock_key="visualsearch.reindex"} 1.0' in text
    assert 'lookalike_jobs_failing{lock_key="recommendations.train"} 2.0' in text
    assert "recommendations_model_active_version 0.0" in text


@pytest.mark.django_db
def test_metrics_ask_for_the_token_when_one_is_set(client, settings):
    settings.LOOKALIKE_METRICS_TOKEN = "s3cret-scraper-token"
    refused = client.get("/metrics")
    assert refused.status_code == 401 and refused["WWW-Authenticate"].startswith("Bearer")
    assert b"lookalike_" not in refused.content
    wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    basic = client.get("/metrics", headers={"Authorization": "Basic s3cret-scraper-token"})
    assert basic.status_code == 401
    served = client.get("/metrics", headers={"Authorization": "Bearer s3cret-scraper-token"})
    assert served.status_code == 200 and b"lookalike_jobs" in served.content


@pytest.mark.django_db  # the registry's collectors read the database
def test_observe_search_records_a_plan():
    from prometheus_client import REGISTRY

    from lookalike.metrics import observe_search

    observe_search("exact", 0.004)
    assert REGISTRY.get_sample_value("lookalike_search_plan_seconds_count", {"plan": "exact"}) >= 1


def _python(code, environ):
    """``code`` run by this Python in the repository, with ``environ``: its output."""
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environ, capture_output=True, text=True
    )


def test_logs_are_json_lines_when_asked_for(tmp_path):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    environ.update(DJANGO_LOG_FORMAT="json", LOOKALIKE_VAR_DIR=str(tmp_path))
    code = (
        "import os, logging; os.environ['DJANGO_SETTINGS_MODULE'] = 'config.settings'\n"
        "import django; django.setup()\n"
        "logging.getLogger('lookalike.jobs.runner').info("
        "'Job 7 succeeded', extra={'job_id': 7, 'status': 'succeeded'})\n"
        "try:\n    1 / 0\nexcept ZeroDivisionError:\n"
        "    logging.getLogger('django.request').exception('Internal Server Error: /x/')\n"
    )
    result = _python(code, environ)
    records = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    job, error = records
    assert job["message"] == "Job 7 succeeded" and job["job_id"] == 7
    assert job["level"] == "INFO" and job["logger"] == "lookalike.jobs.runner"
    assert error["level"] == "ERROR" and "ZeroDivisionError" in error["exc_info"]


def test_gunicorn_lines_are_json_with_the_request_s_fields(tmp_path):
    """make serve's gunicorn (config/gunicorn.conf.py under DJANGO_LOG_FORMAT=json): its own
    messages and, when asked, one access line per request, each a JSON object."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "GUNICORN_"))}
    environ.update(DJANGO_LOG_FORMAT="json", GUNICORN_ACCESS_LOG="1")
    code = (
        "import logging, logging.config, runpy\n"
        "conf = runpy.run_path('config/gunicorn.conf.py')\n"
        "logging.config.dictConfig(conf['logconfig_dict'])\n"
        "logging.getLogger('gunicorn.error').info('Booting worker with pid: %s', 42)\n"
        "atoms = {'h': '10.0.0.9', 'm': 'GET', 'U': '/p/7/', 'q': 'from=for-you', 's': '200',\n"
        "         'B': '5120', 'D': '8123', '{x-request-id}o': 'abc-123', 'a': 'Firefox'}\n"
        "logging.getLogger('gunicorn.access').info('%(h)s %(m)s %(U)s', atoms)\n"
    )
    run = _python(code, environ)
    [booted] = [json.loads(line) for line in run.stderr.splitlines() if line.startswith("{")]
    assert (
        booted["logger"] == "gunicorn.error" and booted["message"] == "Booting worker with pid: 42"
    )
    [access] = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    assert access["message"] == "10.0.0.9 GET /p/7/"
    assert (access["method"], access["path"], access["query"]) == ("GET", "/p/7/", "from=for-you")
    assert (access["status"], access["bytes"], access["duration_us"]) == (200, 5120, 8123)
    assert access["request_id"] == "abc-123" and access["user_agent"] == "Firefox"
    # Access lines only when asked for.
    environ["GUNICORN_ACCESS_LOG"] = "0"
    run = _python(code, environ)
    assert run.stdout.strip() == "" and "Booting worker" in run.stderr


def test_jobs_are_sent_through_the_projects_celery_app(tmp_path):
    """Every process of the project (a gunicorn worker imports nothing but the settings and
    the WSGI application) sends jobs through the configured app, not Celery's default one
    (amqp://localhost, queue "celery"), which no worker of the shop listens to."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    environ.update(LOOKALIKE_VAR_DIR=str(tmp_path), CELERY_BROKER_URL="redis://broker.test:6379/3")
    code = (
        "import os; os.environ['DJANGO_SETTINGS_MODULE'] = 'config.settings'\n"
        "from config.wsgi import application\n"
        "from celery import current_app\n"
        "conf = current_app.conf\n"
        "print(current_app.main, conf.broker_url, conf.task_default_queue)\n"
    )
    result = _python(code, environ)
    assert result.stdout.split() == ["lookalike", "redis://broker.test:6379/3", "lookalike"]


@pytest.mark.django_db(transaction=True)
def test_a_broker_that_never_answers_is_given_up_on(client, settings):
    """A paused Redis accepts connections and answers nothing: without socket timeouts the
    health probe, and a request that queued a job, waited for ever and held their thread."""
    import socket
    import time

    from config.celery import app
    from lookalike.jobs import services
    from lookalike.jobs.models import Job

    server = socket.socket()  # listens, never reads
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    settings.LOOKALIKE_JOBS_BACKEND = "celery"
    saved = app.conf.broker_url
    app.conf.broker_url = f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    try:
        start = time.monotonic()
        status, checks = health(client)
        probed = time.monotonic() - start
        start = time.monotonic()
        job = services.enqueue("tests.jobs.handlers.count_to", lock_key="count", params={"n": 1})
        queued = time.monotonic() - start
    finally:
        app.conf.broker_url = saved
        server.close()
    # django-health-check answers after the check's 3 s; the socket timeouts end the
    # check's own thread too (under gunicorn the request had waited for it).
    assert status == 500 and checks["JobBroker()"] != "OK"
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED and "could not be sent" in job.message
    assert probed < 20 and queued < 30, (probed, queued)


@pytest.mark.django_db
def test_made_up_methods_add_no_metric_series(client):
    """django-prometheus labels its latency histogram with the method as sent; any client
    could add series without end (config/prometheus.py)."""
    for method in ("ZZ123", "ZZ124"):
        client.generic(method, "/")
    text = client.get("/metrics").content.decode()
    assert "ZZ12" not in text
    assert 'method="<invalid method>"' in text


@pytest.mark.django_db
def test_each_request_has_an_id_in_its_response_and_its_log_records(client):
    import logging
    import re

    from django.http import HttpResponse
    from django.test import RequestFactory

    from config.logs import RequestIdFilter, RequestIdMiddleware

    assert client.get("/", HTTP_X_REQUEST_ID="edge-7f3a.1")["X-Request-ID"] == "edge-7f3a.1"
    # Not an id (spaces, too long, a header injection attempt): a new one instead.
    for sent in ("two words", "x" * 65, "a\r\nSet-Cookie: x=1"):
        answered = client.get("/", HTTP_X_REQUEST_ID=sent)["X-Request-ID"]
        assert re.fullmatch(r"[0-9a-f]{32}", answered)
    seen = []

    def view(request):
        record = logging.LogRecord("lookalike", logging.WARNING, __file__, 1, "m", None, None)
        RequestIdFilter().filter(record)
        seen.append(record.request_id)
        return HttpResponse()

    RequestIdMiddleware(view)(RequestFactory().get("/", HTTP_X_REQUEST_ID="r-1"))
    outside = logging.LogRecord("lookalike", logging.WARNING, __file__, 1, "m", None, None)
    RequestIdFilter().filter(outside)
    assert seen == ["r-1"] and not hasattr(outside, "request_id")
    # Django's "Not Found: ..." line is written after the middleware returned: its record
    # carries the request, whose id it gets.
    records = []
    handler = logging.Handler()
    handler.addFilter(RequestIdFilter())
    handler.emit = records.append
    logging.getLogger("django.request").addHandler(handler)
    try:
        assert client.get("/no-such-page/", HTTP_X_REQUEST_ID="lost-404").status_code == 404
    finally:
        logging.getLogger("django.request").removeHandler(handler)
    assert [r.request_id for r in records if "Not Found" in r.getMessage()] == ["lost-404"]
