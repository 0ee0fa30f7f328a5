"""Closed-loop load on the demo shop: ``make serve``'s stack against Django's development
server, in one run, on loopback.

Each client is a shopper with its own keep-alive connection and cookies who sends a request,
waits for the whole answer and sends the next one, drawn from a mix: product pages (with
their "Similar items" strip), the home page (with "For you"), "find similar" pages, the
similar API and, at a small share, photo searches (a 256-px JPEG of a catalogue photo).
Clients claim distinct addresses in ``X-Forwarded-For`` and both servers trust one proxy
(``DJANGO_NUM_PROXIES=1``), so the photo-search throttle counts per shopper, as behind a
real proxy, instead of counting every client as one. Each server gets a warm-up (models
loaded, buffers filled), then 1, 10 and 50 clients in turn. A request that fails (connection
error, or a status other than 200) is an error; one without an answer in ``--timeout``
seconds is a timeout.

Run it on the demo database, with no other server on the ports (``make demo`` or
``make serve`` prepare it first)::

    .venv/bin/python bench/load.py [--seconds 20 --long-seconds 60] [--servers serve,dev]

It starts and stops the servers itself: ``python -m config.serve`` (gunicorn, Redis, Celery;
``make serve``) on port 8101 and ``manage.py runserver --noreload`` with ``DJANGO_DEBUG=1``
(``make demo``) on port 8102. ``--url NAME=http://host:port`` measures a server that is
already running instead. Prints one JSON object. The events its shoppers recorded (their
page views) are deleted at the end (``bench_events_removed``), so that they never count as the
demo's shoppers'.
"""

import argparse
import http.client
import io
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

#: The mix: (kind, weight).
MIX = (("product", 40), ("home", 15), ("similar_page", 20), ("similar_api", 20), ("photo", 5))


def catalogue_sample(n=500, seed=0):
    """Product ids with vectors and a 256-px JPEG of one catalogue photo."""
    import django

    django.setup()
    from PIL import Image

    from lookalike.catalogue import get_adapter
    from visualsearch.models import ProductEmbedding

    ids = list(ProductEmbedding.objects.values_list("product_id", flat=True).distinct()[:5000])
    if not ids:
        sys.exit("No product has a vector: run `make demo` or `manage.py prepare_demo` first.")
    rng = random.Random(seed)
    ids = rng.sample(ids, min(n, len(ids)))
    names = get_adapter().get_queryset().filter(pk=ids[0]).values_list("image", flat=True)
    with get_adapter().open_image(names[0]) as fh:
        image = Image.open(fh).convert("RGB").resize((256, 256))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    from django.db import connections

    connections.close_all()
    return ids, buffer.getvalue()


#: Every address a bench shopper claimed: their events are removed at the end.
CLAIMED = set()


class Client(threading.Thread):
    """One shopper: requests in a loop until ``stop`` is set."""

    def __init__(self, base, number, ids, photo, stop, timeout, seed):
        super().__init__(daemon=True)
        parts = urlsplit(base)
        self.host, self.port = parts.hostname, parts.port
        self.address = f"10.{number // 250}.{number % 250}.{1 + seed % 200}"
        CLAIMED.add(self.address)
        self.ids, self.photo, self.stop, self.timeout = ids, photo, stop, timeout
        self.rng = random.Random(seed * 1000 + number)
        self.cookies = {}
        self.conn = None
        self.results = []  # (kind, seconds, outcome) with outcome "ok", "error" or "timeout"

    def request(self, kind):
        pid = self.rng.choice(self.ids)
        headers = {"X-Forwarded-For": self.address, "User-Agent": "lookalike-bench/1.0"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        method = "GET"
        path = {
            "product": f"/p/{pid}/",
            "home": "/",
            "similar_page": f"/visual/similar/{pid}/",
            "similar_api": f"/api/products/{pid}/similar/",
            "photo": "/api/search/image/",
        }[kind]
        if kind == "photo":
            method = "POST"
            boundary = "lookalikebench"
            body = (
                (
                    f'--{boundary}\r\nContent-Disposition: form-data; name="image"; '
                    'filename="photo.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
                ).encode()
                + self.photo
                + f"\r\n--{boundary}--\r\n".encode()
            )
            headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        response.read()
        for header, value in response.getheaders():
            if header.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                self.cookies[name.strip()] = rest.split(";", 1)[0]
        if response.getheader("Connection", "").lower() == "close":
            self.conn.close()
            self.conn = None
        return response.status

    def run(self):
        kinds, weights = zip(*MIX, strict=True)
        while not self.stop.is_set():
            kind = self.rng.choices(kinds, weights)[0]
            start = time.perf_counter()
            try:
                status = self.request(kind)
                outcome = "ok" if status == 200 else f"status {status}"
            except TimeoutError:
                outcome = "timeout"
                self._reset()
            except (OSError, http.client.HTTPException) as exc:
                outcome = f"error {type(exc).__name__}"
                self._reset()
            self.results.append((kind, time.perf_counter() - start, outcome))

    def _reset(self):
        if self.conn is not None:
            self.conn.close()
        self.conn = None


def _cpu_seconds(pids):
    import psutil

    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def _tree(pid):
    import psutil

    try:
        root = psutil.Process(pid)
        return [pid] + [p.pid for p in root.children(recursive=True)]
    except psutil.Error:
        return []


def _postgres_cpu_seconds():
    """CPU seconds the embedded server has used so far: its processes alive now, plus what
    the backends that already exited used (the postmaster reaps them, so their time is its
    children's). A server that connects per request starts and ends a backend each time:
    counting only the processes alive at the start and the end would lose theirs."""
    import psutil

    pgdata = str(ROOT / "var" / "pgdata")
    total = 0.0
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if pgdata not in cmdline:
            continue
        try:
            times = proc.cpu_times()
            children = proc.children(recursive=True)
        except psutil.Error:
            continue
        total += times.user + times.system + times.children_user + times.children_system
        total += _cpu_seconds([child.pid for child in children])
    return total


def run_level(base, clients, seconds, ids, photo, timeout, seed, server_pid=None):
    """One level of load; with ``server_pid`` also the CPU time that the server's processes,
    PostgreSQL and this load generator used per request, and how busy the machine was."""
    import psutil

    server = _tree(server_pid) if server_pid else []
    before = (_cpu_seconds(server), _postgres_cpu_seconds(), _cpu_seconds([os.getpid()]))
    machine = psutil.cpu_times()
    stop = threading.Event()
    threads = [Client(base, i, ids, photo, stop, timeout, seed) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join(timeout + 5)
    elapsed = time.perf_counter() - started
    results = [r for t in threads for r in t.results]
    summary = summarise(results, elapsed)
    after = (_cpu_seconds(server), _postgres_cpu_seconds(), _cpu_seconds([os.getpid()]))
    used = [b - a for a, b in zip(before, after, strict=True)]
    machine_after = psutil.cpu_times()
    busy = sum(machine_after) - machine_after.idle - (sum(machine) - machine.idle)
    n = max(len(results), 1)
    summary["cpu_ms_per_request"] = {
        "server": round(used[0] * 1000 / n, 1) if server else None,
        "postgres": round(used[1] * 1000 / n, 1),
        "load_generator": round(used[2] * 1000 / n, 1),
        # Everything the machine ran, other work included.
        "machine": round(busy * 1000 / n, 1),
    }
    summary["machine_busy_percent"] = round(
        100 * busy / max(sum(machine_after) - sum(machine), 1e-9), 1
    )
    summary["load_average_after"] = round(os.getloadavg()[0], 2)
    return summary


def summarise(results, elapsed):
    def figures(rows):
        ok = [s * 1000 for _, s, outcome in rows if outcome == "ok"]
        out = {
            "requests": len(rows),
            "errors": sum(1 for *_, o in rows if o not in ("ok", "timeout")),
            "timeouts": sum(1 for *_, o in rows if o == "timeout"),
        }
        if ok:
            out.update(
                p50_ms=round(float(np.percentile(ok, 50)), 1),
                p95_ms=round(float(np.percentile(ok, 95)), 1),
                p99_ms=round(float(np.percentile(ok, 99)), 1),
            )
        return out

    summary = figures(results)
    summary["throughput_rps"] = round(len(results) / elapsed, 1)
    summary["seconds"] = round(elapsed, 1)
    summary["by_kind"] = {k: figures([r for r in results if r[0] == k]) for k, _ in MIX}
    outcomes = {}
    for *_, outcome in results:
        if outcome != "ok":
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
    if outcomes:
        summary["failures"] = outcomes
    return summary


def start_server(name, port, log):
    environ = {k: v for k, v in os.environ.items() if k != "DJANGO_DEBUG"}
    environ.update(HOST="127.0.0.1", PORT=str(port), DJANGO_NUM_PROXIES="1")
    # One bench client alone sends 40-50 photo searches a minute (5% of 15 requests/s), more
    # than the shop's 30 a minute per client allows: the throttle would answer part of the
    # mix with cheap 429s. The bench measures serving, so it lifts the allowance.
    environ.setdefault("LOOKALIKE_PHOTO_SEARCH_RATE", "100000/minute")
    if name == "serve":
        args = [sys.executable, "-m", "config.serve"]
    else:
        environ["DJANGO_DEBUG"] = "1"
        args = [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"]
    proc = subprocess.Popen(
        args, cwd=ROOT, env=environ, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{name} exited; see {log.name}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("GET", "/")
            if conn.getresponse().status == 200:
                return proc, base
        except OSError:
            pass
        time.sleep(1)
    stop_server(proc)
    sys.exit(f"{name} did not answer in 180 s; see {log.name}")


def stop_server(proc):
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def measure(name, base, args, ids, photo, server_pid=None):
    # Warm-up: every process loads the encoder and the recommender, the buffers fill up.
    run_level(base, 10, args.warmup, ids, photo, args.timeout, seed=99)
    levels = {}
    for clients in (1, 10, 50):
        seconds = args.long_seconds if clients == 50 else args.seconds
        levels[str(clients)] = run_level(
            base, clients, seconds, ids, photo, args.timeout, 1, server_pid
        )
        print(f"{name} {clients} clients: {json.dumps(levels[str(clients)])}", file=sys.stderr)
    return levels


def forget_bench_events(since):
    """Delete the events the bench's shoppers recorded since ``since``: their page views
    would otherwise stay in the demo's data, where popularity, training and
    ``evaluate_recommender`` would count them as shoppers'. Found by the stored form of the
    addresses the shoppers claimed (``Event.client``); the servers trust one proxy, so that
    is the address each event was recorded for."""
    from recommendations.events import hash_client_address
    from recommendations.models import Event

    clients = {hash_client_address(address) for address in CLAIMED}
    deleted, _ = Event.objects.filter(client__in=clients, created_at__gte=since).delete()
    return deleted


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", default="serve,dev", help="which to start, in order")
    parser.add_argument("--url", action="append", default=[], help="NAME=URL already running")
    parser.add_argument("--seconds", type=float, default=20, help="at 1 and 10 clients")
    parser.add_argument("--long-seconds", type=float, default=60, help="at 50 clients")
    parser.add_argument("--warmup", type=float, default=15)
    parser.add_argument("--timeout", type=float, default=30)
    args = parser.parse_args()

    ids, photo = catalogue_sample()
    from django.utils import timezone

    started = timezone.now()
    report = {
        "mix": dict(MIX),
        "machine": {"cpus": os.cpu_count(), "load_before": round(os.getloadavg()[0], 2)},
        "servers": {},
    }
    targets = dict(item.split("=", 1) for item in args.url)
    ports = {"serve": 8101, "dev": 8102}
    try:
        for name, base in targets.items():
            report["servers"][name] = measure(name, base, args, ids, photo)
        for name in [s for s in args.servers.split(",") if s and s not in targets]:
            log_path = ROOT / "var" / f"bench-load-{name}.log"
            log_path.parent.mkdir(exist_ok=True)
            with open(log_path, "w") as log:
                proc, base = start_server(name, ports[name], log)
                try:
                    report["servers"][name] = measure(name, base, args, ids, photo, proc.pid)
                finally:
                    stop_server(proc)
    finally:
        report["bench_events_removed"] = forget_bench_events(started)
    servers = report["servers"]
    if "serve" in servers and "dev" in servers:
        report["throughput_ratio_at_50"] = round(
            servers["serve"]["50"]["throughput_rps"]
            / max(servers["dev"]["50"]["throughput_rps"], 0.1),
            2,
        )
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
