"""Gunicorn settings of ``make serve`` (``gunicorn -c config/gunicorn.conf.py``).

gthread workers: each process runs ``GUNICORN_THREADS`` requests at once and keeps one
persistent database connection per thread (``DJANGO_CONN_MAX_AGE``). Processes, not threads,
are what use several cores for Python code (templates, numpy), so there is one process per
core by default; threads cover the time requests wait on PostgreSQL and Redis. Not two per
core: each process keeps its own copies of what pages reuse (vectors, "find similar"
answers, rendered cards, the model), which twice the processes fill twice over and hold
twice in memory. On a 2-core machine, ``bench/load.py``'s mix at 50 clients: 45-51
requests/s with 4 processes of 8 threads, 51-59 with 2 of 8 (three runs each, alternated;
docs/figures.md, "Serving under load").

Two threads, not eight: the requests are mostly Python, and threads of one process take
turns on its interpreter lock; more of them cost more CPU a request in handing it over (on
a faster machine, 2 processes at 50 clients: 8 threads 134.5-137.7 requests/s in three
runs, 4 threads 142.7-145.4, 2 threads 143.9-162.1, 1 thread 139.7-160.1). One thread
would leave a process idle behind a single slow client; with two, one slow request leaves
the other thread serving. Slow clients (a photo uploaded over a poor connection) hold a
thread while they send: in front of the shop, put a proxy that buffers requests (nginx),
as for any gunicorn deployment.
Database connections: workers x threads (4 on two cores) plus the Celery worker's, well
under PostgreSQL's 100 (the embedded server's is raised to ``LOOKALIKE_DB_MAX_CONNECTIONS``).
"""

import os
import shutil
import sys

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", os.cpu_count() or 1))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "2"))
# Connections waiting for a thread; beyond it the kernel's backlog queues them.
worker_connections = 1000
backlog = 2048
# A worker silent for this long (its main loop stuck) is killed and replaced. Not a limit on
# a request: a gthread worker keeps reporting while its threads serve, so a slow request
# lasts as long as what it waits on (the Redis cache gives up after its socket timeout).
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = 10
keepalive = 5
# Recycle processes now and then, so that no slow leak (a decoder's memory) grows for ever.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "20000"))
max_requests_jitter = max_requests // 10
# Access lines to stdout when asked (GUNICORN_ACCESS_LOG=1); errors always to stderr. As JSON
# lines where the shop's records are (DJANGO_LOG_FORMAT=json, make serve's default): the
# request's fields, its X-Request-ID among them (config.logs.gunicorn_logging_config).
accesslog = "-" if os.environ.get("GUNICORN_ACCESS_LOG") == "1" else None
errorlog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(B)s %(D)sus %({x-request-id}o)s'
if os.environ.get("DJANGO_LOG_FORMAT") == "json":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from config.logs import gunicorn_logging_config

    logconfig_dict = gunicorn_logging_config(access=accesslog is not None)
proc_name = "lookalike-web"
wsgi_app = "config.wsgi:application"
# gunicornc's control socket beside the shop's other runtime files, not one per user in
# ~/.gunicorn, which a second server on this machine (a test's) would fight over; one per
# port, so that a second gunicorn from the same folder does not take the first one's.
_var = os.environ.get(
    "LOOKALIKE_VAR_DIR", os.path.join(os.path.dirname(os.path.dirname(__file__)), "var")
)
control_socket = os.path.join(_var, f"gunicorn-{os.environ.get('PORT', '8000')}.ctl")


def on_starting(server):
    """Start with an empty Prometheus folder: files of processes of an earlier run would be
    added to this one's figures."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder, exist_ok=True)


def child_exit(server, worker):
    """A worker that exits takes its live gauges with it (prometheus_client's advice)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
