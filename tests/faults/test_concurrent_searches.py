"""Fifty shoppers search by photo at once: no 5xx, and the server's memory stays bounded.

The searches run through Django's request handling in fifty threads of this process, each
with its own database connection, as fifty worker threads of an application server would:
what is tested is the application's behaviour and memory under concurrency, not a socket
server (the test server's listen backlog of 10 would refuse most connections).
"""

import io
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

CLIENTS = 50
#: Measured here: 500-640 MB of peak RSS growth for the fifty threads, most of it glibc's
#: per-thread malloc arenas (Python's own allocations peak at about 50 MB under
#: tracemalloc; with MALLOC_ARENA_MAX=2 the growth was 364 MB); ten threads stay under
#: 300 MB. Decoding and embedding hold at most VISUALSEARCH_PHOTO_SEARCH_CONCURRENCY slots
#: at once, so the bound does not grow with the photos' size.
MAX_GROWTH_MB = 1024


def photo(seed):
    """A phone-sized photo (1600 x 1200 JPEG, a few hundred kB): smooth shading, a
    product-like shape and sensor noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:1200, 0:1600].astype(np.float32)
    base = 120 + 60 * np.sin(x / (200 + seed)) * np.cos(y / 300)
    pixels = np.stack([base, base * 0.9, base * 0.8], axis=-1)
    x0, y0 = 400 + 10 * seed, 300
    pixels[y0 : y0 + 600, x0 : x0 + 700] = rng.integers(0, 255, 3)
    pixels += rng.normal(0, 6, pixels.shape)
    out = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(out, "JPEG", quality=85)
    return out.getvalue()


def peak_rss_mb():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def test_fifty_concurrent_photo_searches(catalogue, settings):
    from django.db import connection
    from django.test import Client

    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {
            **settings.REST_FRAMEWORK.get("DEFAULT_THROTTLE_RATES", {}),
            "image_search": "10000/minute",
        },
    }
    photos = [photo(i) for i in range(CLIENTS)]
    # Reset this process's peak-RSS mark (Linux): the live server runs in it.
    Path("/proc/self/clear_refs").write_text("5")
    before = peak_rss_mb()

    statuses, errors = [], []
    start = threading.Barrier(CLIENTS)

    def shopper(i):
        upload = io.BytesIO(photos[i])
        upload.name = f"shopper-{i}.jpg"
        client = Client(REMOTE_ADDR=f"10.0.{i // 250}.{i % 250 + 1}")
        start.wait()
        try:
            statuses.append(
                client.post("/api/search/image/", {"image": upload, "k": 5}).status_code
            )
        except Exception as exc:  # noqa: BLE001 - an exception is a 500 a shopper would see
            errors.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=shopper, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    growth = peak_rss_mb() - before

    assert not errors, errors[:3]
    assert len(statuses) == CLIENTS and all(s < 500 for s in statuses), statuses
    assert statuses.count(200) == CLIENTS
    assert growth < MAX_GROWTH_MB, f"peak RSS grew by {growth:.0f} MB"


def test_a_photo_search_waits_for_a_slot_then_is_told_to_come_back(catalogue, settings, client):
    """The page's 503 when every photo-search slot stays taken for the whole wait."""
    from visualsearch import concurrency

    settings.VISUALSEARCH_PHOTO_SEARCH_CONCURRENCY = 1
    settings.VISUALSEARCH_PHOTO_SEARCH_WAIT_SECONDS = 0.05
    upload = io.BytesIO(photo(0))
    upload.name = "mine.jpg"
    with concurrency.photo_search_slot():
        busy = client.post("/visual/photo/", {"image": upload})
    assert busy.status_code == 503 and busy["Retry-After"] == "5"
    assert "Many shoppers are searching by photo right now" in busy.content.decode()
    upload.seek(0)
    assert client.post("/visual/photo/", {"image": upload}).status_code == 200
