"""Embedding throughput of the default encoder, and agreement with torch eager.

Prints one JSON object: images/s of ``encoder.embed`` (preprocessing included), of the
preprocessing alone (framing on the product, resizing, normalising) and of the network alone
on the fast path (the runtime ``"auto"`` picks: OpenVINO when installed), the network alone on
each other exported runtime (ONNX Runtime) and on torch eager (channels_last), all on the same
batch, and the cosine between the fast path's and torch's features, which must be at least
0.999 for the fast path to be a drop-in replacement. Each figure is the median of several runs
after a warm-up, all measured in one process so that their ratios compare like with like.

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


def median_rates(fns, n_images, runs):
    """Images/s of each callable, median over ``runs`` rounds.

    The callables are timed in turn within each round, not one after the other for all
    rounds: this machine's speed drifts by 20-30% over a minute, and interleaving makes the
    drift hit every figure alike, so their ratios stay meaningful.
    """
    for fn in fns.values():
        fn()  # warm-up: first runs allocate and pick kernels
    times = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: n_images / statistics.median(t) for name, t in times.items()}


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

    fast._ensure_loaded()
    fns = {
        "images_per_s": lambda: fast.embed(images),
        "preprocess_images_per_s": lambda: fast.preprocess(images),
        "model_images_per_s": lambda: fast._run(batch),
    }
    for runtime in ("openvino", "onnxruntime"):
        if runtime == fast.runtime:
            continue
        other = cls(
            artifact_dir=artifact_dir,
            batch_size=args.batch,
            num_threads=args.threads,
            runtime=runtime,
        )
        try:
            other._ensure_loaded()
        except ImportError:
            continue
        fns[f"{runtime}_model_images_per_s"] = lambda other=other: other._run(batch)

    torch.set_num_threads(args.threads)
    module = fast.build_module().to(memory_format=torch.channels_last)
    x = torch.from_numpy(batch).contiguous(memory_format=torch.channels_last)

    def eager():
        with torch.inference_mode():
            return module(x).numpy()

    fns["torch_eager_images_per_s"] = eager
    rates = median_rates(fns, args.batch, args.runs)
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
                **{name: round(rate, 1) for name, rate in rates.items()},
                "model_speedup_vs_torch": round(
                    rates["model_images_per_s"] / rates["torch_eager_images_per_s"], 2
                ),
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
