"""How well photo search's best score tells a photo of a product from a photo of none.

Photo search always answers with its nearest products; a shopper who photographs a rug, a
wall or a blurred nothing should be told that nothing in the shop looks like it. This
script measures the best fused score (:func:`visualsearch.search.search_photos`, as the
shop runs it) of:

* photos **with** a product: shopper photos of catalogue products of every kind
  (:func:`visualsearch.distortions.shopper_photo`, products the projection never learned
  from) and Fashion-MNIST **test** photos (garments of the shop's kinds that are not in
  the catalogue: their nearest products are still fair look-alikes);
* photos **without** one: a surface alone (the textures the shopper photos are laid on,
  plain colours, gradients, noise), a hand or bag alone, a blurred or blank frame.

and, for candidate thresholds, the share of each group below it. Run it on the demo shop
(``make demo`` prepares it)::

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

THRESHOLDS = (0.18, 0.2, 0.22, 0.25, 0.3, 0.35, 0.4)


def empty_photos(n, rng):
    """``{name: [PIL images]}`` of photos without a product, ``n`` of each."""
    from PIL import Image, ImageFilter

    from visualsearch.textures import hand_or_bag, muted_colour, texture

    size = 320
    groups = {"texture": [], "plain": [], "gradient": [], "noise": [], "hand_or_bag": []}
    for _ in range(n):
        groups["texture"].append(texture((size, size), rng))
        groups["plain"].append(Image.new("RGB", (size, size), muted_colour(rng, 0, 255)))
        a, b = np.array(muted_colour(rng)), np.array(muted_colour(rng))
        ramp = np.linspace(0, 1, size)[:, None, None]
        grad = (a * (1 - ramp) + b * ramp).astype(np.uint8)
        groups["gradient"].append(Image.fromarray(np.repeat(grad, size, axis=1)))
        noise = rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)
        groups["noise"].append(
            Image.fromarray(noise).resize((size, size)).filter(ImageFilter.GaussianBlur(3))
        )
        surface = texture((size, size), rng)
        box = (size // 4, size // 4, 3 * size // 4, 3 * size // 4)
        layer, mask = hand_or_bag((size, size), box, rng)
        surface.paste(layer, (0, 0), mask)
        groups["hand_or_bag"].append(surface)
    return groups


def product_photos(n, rng):
    """``{kind: [PIL images]}`` of photos with a product: each shopper-photo kind and the
    Fashion-MNIST test photos."""
    from shop.demo import fashion_mnist
    from shop.models import Product
    from visualsearch.distortions import KINDS, display_copy, shopper_photo
    from visualsearch.encoders import get_encoder
    from visualsearch.imaging import open_image

    seen = set(getattr(get_encoder().projection, "pair_ids", ()) or ())
    pks = [pk for pk in Product.objects.order_by("pk").values_list("pk", flat=True)]
    pool = [pk for pk in pks if pk not in seen]
    field = Product._meta.get_field("image")

    def display(pk):
        product = Product.objects.get(pk=pk)
        with field.storage.open(product.image.name, "rb") as fh:
            return display_copy(open_image(fh.read()), 224)

    groups, targets = {}, {}
    for kind in KINDS:
        chosen = rng.choice(pool, size=n, replace=False).tolist()
        others = rng.choice(pks, size=n).tolist()
        groups[kind] = [
            shopper_photo(display(pk), rng, kind, display(other if other != pk else pks[0])).image
            for pk, other in zip(chosen, others, strict=True)
        ]
        targets[kind] = chosen
    split = fashion_mnist.load_split("test")
    picked = fashion_mnist.stratified_indices(split.labels, 2 * n, seed=int(rng.integers(1e6)))
    groups["test_photo"] = [
        display_copy(fashion_mnist.to_image(split.images[i]), 224) for i in picked
    ]
    return groups, targets


def searched(images, targets=None):
    """``(best scores, whether each target is in the top 10)`` of photo search."""
    from visualsearch import search

    scores, hits = [], []
    for start in range(0, len(images), 16):
        for answer in search.search_photos(images[start : start + 16], k=10):
            scores.append(answer.hits[0].score if answer.hits else float("-inf"))
            hits.append([h.product_id for h in answer.hits])
    found = None
    if targets is not None:
        found = np.asarray([t in row for t, row in zip(targets, hits, strict=True)])
    return np.asarray(scores), found


def summary(scores):
    return {
        "n": len(scores),
        "min": round(float(scores.min()), 3),
        "p01": round(float(np.percentile(scores, 1)), 3),
        "p05": round(float(np.percentile(scores, 5)), 3),
        "median": round(float(np.median(scores)), 3),
        "p95": round(float(np.percentile(scores, 95)), 3),
        "max": round(float(scores.max()), 3),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=60, help="Photos of each kind.")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import django

    django.setup()
    from visualsearch.conf import app_settings

    rng = np.random.default_rng(args.seed)
    photos, targets = product_photos(args.photos, rng)
    with_product, found = {}, {}
    for kind, images in photos.items():
        with_product[kind], found[kind] = searched(images, targets.get(kind))
    without = {k: searched(v)[0] for k, v in empty_photos(args.photos, rng).items()}
    every_with = np.concatenate(list(with_product.values()))
    every_without = np.concatenate(list(without.values()))
    shopper_scores = np.concatenate([with_product[k] for k in targets])
    shopper_found = np.concatenate([found[k] for k in targets])

    def found_below(t):
        low = shopper_scores < t
        return None if not low.any() else round(float(shopper_found[low].mean()), 3)

    below = {
        str(t): {
            "with_a_product": round(float((every_with < t).mean()), 4),
            "without": round(float((every_without < t).mean()), 4),
            # Of the shopper photos below the threshold, how many had their product in
            # the top 10 all the same (those the notice would wrong).
            "below_yet_found": found_below(t),
            **{f"with:{k}": round(float((v < t).mean()), 4) for k, v in with_product.items()},
            **{f"without:{k}": round(float((v < t).mean()), 4) for k, v in without.items()},
        }
        for t in THRESHOLDS
    }
    print(
        json.dumps(
            {
                "encoder": app_settings.ENCODER,
                "setting": app_settings.CLOSE_MATCH_SCORE,
                "with_a_product": {k: summary(v) for k, v in with_product.items()},
                "without_a_product": {k: summary(v) for k, v in without.items()},
                "share_below": below,
            }
        )
    )


if __name__ == "__main__":
    main()
