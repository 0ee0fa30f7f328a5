"""How well photo search's best score tells a photo of a product from a photo of none, on
the demo catalogue.

``manage.py calibrate_close_match`` (:mod:`visualsearch.closeness`) measures this on any
shop's catalogue; this script adds the demo's Fashion-MNIST **test** photos, garments of the
shop's kinds that it does not sell (fair look-alikes exist, so they should not be told "no
close match"), and reports, for each threshold, the share below it of every group. Run it on
the demo shop (``make demo`` prepares it)::

    .venv/bin/python bench/close_match.py [--photos 60] [--seed 0]

Prints one JSON object.
"""

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

THRESHOLDS = (0.16, 0.18, 0.2, 0.22, 0.25, 0.3)


def test_photos(n, rng):
    from shop.demo import fashion_mnist
    from visualsearch.distortions import display_copy

    split = fashion_mnist.load_split("test")
    picked = fashion_mnist.stratified_indices(split.labels, n, seed=int(rng.integers(1e6)))
    return [display_copy(fashion_mnist.to_image(split.images[i]), 224) for i in picked]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=60, help="Photos of each kind.")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import django

    django.setup()
    from visualsearch import closeness
    from visualsearch.conf import app_settings

    rng = np.random.default_rng(args.seed)
    with_product, found = closeness.score_product_photos(args.photos, rng)
    with_product["test_photo"], _ = closeness.best_matches(test_photos(2 * args.photos, rng))
    without = closeness.score_empty_photos(args.photos, rng)
    every_with = np.concatenate(list(with_product.values()))
    every_without = np.concatenate(list(without.values()))
    shopper = np.concatenate([with_product[k] for k in found])
    shopper_found = np.concatenate(list(found.values()))

    groups = {
        "with_a_product": every_with,
        "shopper_photos": shopper,
        "without": every_without,
        **{f"with:{k}": v for k, v in with_product.items()},
        **{f"without:{k}": v for k, v in without.items()},
    }
    below = closeness.shares_below(THRESHOLDS, groups, shopper, shopper_found)
    print(
        json.dumps(
            {
                "encoder": app_settings.ENCODER,
                "setting": app_settings.CLOSE_MATCH_SCORE,
                "with_a_product": {k: closeness.summary(v) for k, v in with_product.items()},
                "without_a_product": {k: closeness.summary(v) for k, v in without.items()},
                "share_below": below,
            }
        )
    )


if __name__ == "__main__":
    main()
