"""Embedding throughput of the default encoder, and agreement with torch eager.

Prints one JSON object: images/s of ``encoder.embed`` (preprocessing included), of the
preprocessing alone (framing on the product, resizing, normalising) and of the network alone
on the fast path (ONNX Runtime), images/s of torch eager (channels_last) on the
same batch, and the cosine between the fast path's and torch's features, which must be at least
0.999 for the fast path to be a drop-in replacement. Each figure is the median of several runs
after a warm-up.

Usage::

    .venv/bin/python bench/embed_throughput.py [--batch 32] [--threads 2] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def sample_images(n, size, seed=0):
    """Smooth random colour images with some texture: closer to photos than white noise."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    images = []
    for _ in range(n):
        coarse = rng.integers(0, 256, size=(6, 6, 3), dtype=np.uint8)
        im = Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC)
        arr = np.asarray(im).astype(np.int16) + rng.integers(-20, 21, size=(size, size, 3))
        images.append(Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)))
    return images


def median_rate(fn, n_images, runs):
    fn()  # warm-up: first runs allocate and pick kernels
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return n_images / statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--encoder", default=None, help="registry name (default: settings)")
    parser.add_argument(
        "--artifact-dir",
        default=None,
        help="where the ONNX export is cached (default: a temporary folder)",
    )
    args = parser.parse_args(argv)

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()

    import torch

    from visualsearch.conf import app_settings
    from visualsearch.encoders import get_encoder
    from visualsearch.encoders.base import l2_normalize

    name = args.encoder or app_settings.ENCODER
    cls = type(get_encoder(name))
    artifact_dir = args.artifact_dir or tempfile.mkdtemp(prefix="embed-bench-")
    fast = cls(
        artifact_dir=artifact_dir,
        batch_size=args.batch,
        num_threads=args.threads,
        runtime="auto",
    )
    images = sample_images(args.batch, args.size)
    batch = fast.preprocess(images)

    embed_rate = median_rate(lambda: fast.embed(images), args.batch, args.runs)
    preprocess_rate = median_rate(lambda: fast.preprocess(images), args.batch, args.runs)
    model_rate = median_rate(lambda: fast._run(batch), args.batch, args.runs)

    torch.set_num_threads(args.threads)
    module = fast.build_module().to(memory_format=torch.channels_last)
    x = torch.from_numpy(batch).contiguous(memory_format=torch.channels_last)

    def eager():
        with torch.inference_mode():
            return module(x).numpy()

    eager_rate = median_rate(eager, args.batch, args.runs)
    cos = np.sum(l2_normalize(fast._run(batch)) * l2_normalize(eager()), axis=1)

    print(
        json.dumps(
            {
                "encoder": fast.name,
                "runtime": fast.runtime,
                "batch": args.batch,
                "size": args.size,
                "threads": args.threads,
                "runs": args.runs,
                "images_per_s": round(embed_rate, 1),
                "preprocess_images_per_s": round(preprocess_rate, 1),
                "model_images_per_s": round(model_rate, 1),
                "torch_eager_images_per_s": round(eager_rate, 1),
                "mean_cosine_vs_torch": round(float(cos.mean()), 6),
                "min_cosine_vs_torch": round(float(cos.min()), 6),
                "torch": torch.__version__,
            },
            indent=2,
        )
    )
    return 0 if cos.mean() >= 0.999 else 1


if __name__ == "__main__":
    sys.exit(main())
