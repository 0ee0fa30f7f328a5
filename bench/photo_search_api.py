"""End-to-end latency of photo search through the API, on the current database.

Posts Fashion-MNIST **test** photos (never in the catalogue), enlarged to display size and
saved as JPEG like a phone upload, to ``POST /api/search/image/`` through Django's test
client: upload parsing, validation, decoding, localisation, embedding, the vector search
and the response. Run it on the demo shop (``make demo`` prepares it)::

    .venv/bin/python bench/photo_search_api.py [--queries 100] [--k 12] [--kind textured]

``--kind`` makes each test photo into a shopper's photo of that kind first
(:func:`visualsearch.distortions.shopper_photo`: small on a textured surface, two products
side by side...), where localisation finds regions and searches each: the costly case.
Prints one JSON object with p50/p95 in milliseconds and the share of photos searched in
regions.
"""

import argparse
import io
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--k", type=int, default=12)
    parser.add_argument("--kind", help="Kind of shopper photo (default: the test photo).")
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.test import Client

    from shop.demo import fashion_mnist
    from visualsearch.distortions import KINDS, display_copy, shopper_photo

    if args.kind is not None and args.kind not in KINDS:
        sys.exit(f"--kind must be one of {', '.join(KINDS)}.")

    settings.ALLOWED_HOSTS = ["*"]
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"image_search": "100000/minute"},  # measure, not throttle
    }
    split = fashion_mnist.load_split("test")
    indices = fashion_mnist.stratified_indices(split.labels, args.queries + 1, seed=1)
    uploads = []
    rng = np.random.default_rng(1)
    for n, i in enumerate(indices):
        photo = fashion_mnist.to_image(split.images[i]).convert("RGB")
        if args.kind is not None:
            other = fashion_mnist.to_image(split.images[indices[n - 1]])
            photo = shopper_photo(
                display_copy(photo, 224), rng, args.kind, display_copy(other, 224)
            ).image
        photo = photo.resize((512, round(512 * photo.height / photo.width)))
        buf = io.BytesIO()
        photo.save(buf, format="JPEG", quality=85)
        uploads.append(buf.getvalue())

    client = Client()

    def post(data):
        upload = io.BytesIO(data)
        upload.name = "photo.jpg"
        response = client.post("/api/search/image/", {"image": upload, "k": args.k})
        if response.status_code != 200:
            sys.exit(f"HTTP {response.status_code}: {response.content[:200]!r}")
        body = response.json()
        return body["results"], body["regions"]

    post(uploads[0])  # loads the encoder once, as a running server would have
    times, sizes, in_regions = [], [], 0
    for data in uploads[1:]:
        start = time.perf_counter()
        results, regions = post(data)
        times.append((time.perf_counter() - start) * 1000)
        sizes.append(len(results))
        in_regions += bool(regions)
    print(
        json.dumps(
            {
                "endpoint": "POST /api/search/image/",
                "queries": len(times),
                "upload": "512 px wide JPEG q85",
                "kind": args.kind or "test photo",
                "searched_in_regions": round(in_regions / len(times), 3),
                "k": args.k,
                "p50_ms": round(float(np.percentile(times, 50)), 1),
                "p95_ms": round(float(np.percentile(times, 95)), 1),
                "min_results": min(sizes),
                "load_average": os.getloadavg()[0],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
