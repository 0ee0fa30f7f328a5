"""``make serve`` (``python -m config.serve``) on a fresh data folder: gunicorn answers with
DEBUG off and WhiteNoise's hashed static files, the health endpoint answers, and a SIGTERM
to the whole process group (what Ctrl-C in a terminal amounts to) stops every process it
started, the embedded PostgreSQL included, even while ``prepare_demo`` is still running."""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=20) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


def redis_reachable():
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


@pytest.mark.parametrize("redis", ["running", "its own"])
def test_serve_runs_the_production_stack_and_stops_cleanly(tmp_path, redis):
    """With the Redis that runs on this machine, and with none on the port it looks at, so
    that it starts Redis itself (and stops it)."""
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    for name in ("DATABASE_URL", "LOOKALIKE_DB_NAME", "LOOKALIKE_MEDIA_ROOT", "LOOKALIKE_PGDATA"):
        environ.pop(name, None)
    for name in ("REDIS_URL", "CELERY_BROKER_URL"):
        environ.pop(name, None)
    environ.update(LOOKALIKE_VAR_DIR=str(tmp_path), HOST="127.0.0.1", PORT=str(port))
    if redis == "running":
        if not redis_reachable():
            pytest.skip("no Redis on 127.0.0.1:6379")
        # A database of its own, not the one a `make serve` uses.
        environ.update(
            REDIS_URL="redis://127.0.0.1:6379/12", CELERY_BROKER_URL="redis://127.0.0.1:6379/12"
        )
    else:
        if not shutil.which("redis-server"):
            pytest.skip("redis-server is not installed (make serve installs it when needed)")
        environ["LOOKALIKE_REDIS_PORT"] = str(free_port())
    # With a Redis of its own, make serve runs under a parent that is stopped alone at the
    # end (as a supervisor signals only its child): it must stop everything all the same.
    wrapped = redis != "running"
    command = [sys.executable, "-m", "config.serve"]
    if wrapped:
        command = [sys.executable, "-c", f"import subprocess; subprocess.run({command!r})"]
    proc = subprocess.Popen(
        command,
        cwd=ROOT, env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    lines = []
    threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, "".join(lines[-60:])
            try:
                status, _, home = get(base + "/")
                if status == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "".join(lines[-60:])
            time.sleep(0.5)
        assert "DEBUG = True" not in get(base + "/no-such-page/")[2]
        css = re.search(r'href="(/static/shop/shop\.[0-9a-f]{12}\.css)"', home)
        assert css, "static files are not served under hashed names"
        status, headers, _ = get(base + css.group(1))
        assert status == 200 and "immutable" in headers.get("Cache-Control", "")
        status, _, body = get(base + "/health/?format=json")
        assert '"Database(alias=\'default\')": "OK"' in body and '"JobBroker()": "OK"' in body
        assert "lookalike_jobs" in get(base + "/metrics")[2]
        # A second start from the same folder, or on the same port, is refused before it
        # touches anything (it had emptied the running one's Prometheus folder).
        for env in (environ, {**environ, "LOOKALIKE_VAR_DIR": str(tmp_path / "other")}):
            second = subprocess.run(
                [sys.executable, "-m", "config.serve"],
                cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert second.returncode == 2, second.stdout[-2000:]
        assert "another make serve runs from" in subprocess.run(
            [sys.executable, "-m", "config.serve"],
            cwd=ROOT, env=environ, capture_output=True, text=True, timeout=60,
        ).stdout  # fmt: skip
        assert "django_http_requests_total_by_method" in get(base + "/metrics")[2]
        if redis == "running":
            # A worker killed outright is started again; the shop serves on meanwhile.
            worker = next(
                p
                for p in psutil.Process(proc.pid).children()
                if "worker" in (p.cmdline() or []) and "celery" in " ".join(p.cmdline())
            )
            os.killpg(worker.pid, signal.SIGKILL)
            deadline = time.monotonic() + 60
            while "worker exited with status -9: starting it again" not in "".join(lines):
                assert proc.poll() is None and time.monotonic() < deadline, "".join(lines[-60:])
                assert get(base + "/")[0] == 200
                time.sleep(0.5)
            assert any(
                "celery" in " ".join(p.cmdline()) and p.pid != worker.pid
                for p in psutil.Process(proc.pid).children()
            )
        tree = [proc.pid] + [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
        postmasters = [
            p.pid
            for p in psutil.process_iter(["cmdline"])
            if str(tmp_path / "pgdata") in " ".join(p.info["cmdline"] or [])
        ]
        assert postmasters, "the embedded PostgreSQL of this data folder is not running"
    finally:
        if wrapped:
            proc.terminate()  # its parent only
        else:
            os.killpg(proc.pid, signal.SIGTERM)  # the whole group, as Ctrl-C would
        try:
            proc.wait(60)
            deadline = time.monotonic() + 60
            while wrapped and any(psutil.pid_exists(pid) for pid in tree[1:]):
                assert time.monotonic() < deadline, "make serve outlived its parent"
                time.sleep(0.5)
        except (subprocess.TimeoutExpired, AssertionError, NameError):
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    output = "".join(lines)
    assert proc.returncode == (-signal.SIGTERM if wrapped else 0), output[-3000:]
    assert "%|" not in output  # no progress bar glued to the JSON log lines
    if redis == "its own":
        assert "started a Redis of its own" in output
        assert (tmp_path / "redis" / "appendonlydir").exists()
    time.sleep(0.5)
    alive = [pid for pid in tree + postmasters if psutil.pid_exists(pid)]
    alive = [pid for pid in alive if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
    assert not alive, (alive, output[-3000:])


def test_serve_refuses_an_external_database_without_a_shared_secret_key(tmp_path):
    """Each machine would make its own key in its var/: sessions and forms signed on one
    would fail on the next. The settings refuse it; so does make serve, before starting."""
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SECRET_KEY"} | {
        "DATABASE_URL": "postgres://shop@db.invalid/shop",
        "LOOKALIKE_VAR_DIR": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-c", "from config import serve; serve.secret_key()"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0 and "DJANGO_SECRET_KEY is not set" in done.stderr
    assert not (tmp_path / "secret_key").exists()
