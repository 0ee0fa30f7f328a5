"""Building the demo catalogue from Fashion-MNIST train images.

Titles, prices and stock are generated (seeded) and every description says so; only
the photos are real.
"""

import io
from decimal import Decimal

import numpy as np
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils.text import slugify

from shop.models import Category, Product

from . import fashion_mnist

STYLES = [
    "Classic",
    "Relaxed",
    "Slim",
    "Everyday",
    "Essential",
    "Vintage",
    "Soft",
    "Tailored",
    "Urban",
    "Lightweight",
    "Cosy",
    "Minimal",
    "Heritage",
    "Studio",
    "Weekend",
    "Coastal",
]
PRICE_RANGES = {  # euros, by category index
    0: (9, 35),
    1: (25, 90),
    2: (29, 110),
    3: (35, 160),
    4: (69, 260),
    5: (19, 80),
    6: (19, 75),
    7: (39, 150),
    8: (25, 220),
    9: (59, 210),
}
OUT_OF_STOCK_SHARE = 0.1


def ensure_categories():
    cats = []
    for name, slug, _ in fashion_mnist.CATEGORIES:
        cat, _ = Category.objects.get_or_create(
            slug=slug, defaults={"name": name, "description": f"{name} from the demo catalogue."}
        )
        cats.append(cat)
    return cats


def source_ref(index):
    return f"fashion-mnist:train:{index}"


def generated_fields(index, label, rng):
    """Title, description, price and stock for train image ``index`` (all generated)."""
    noun = fashion_mnist.CATEGORIES[label][2]
    style = STYLES[rng.integers(len(STYLES))]
    low, high = PRICE_RANGES[label]
    price = Decimal(int(rng.integers(low, high))) + Decimal("0.99")
    stock = 0 if rng.random() < OUT_OF_STOCK_SHARE else int(rng.integers(1, 60))
    title = f"{style} {noun} {index:05d}"
    description = (
        f"{style} {noun.lower()} from the demo catalogue. Generated demo product: the title, "
        f"price and stock are made up; the photo is Fashion-MNIST train image #{index} "
        "(Zalando Research, MIT licence)."
    )
    return title, description, price, stock


def png_bytes(array):
    buf = io.BytesIO()
    fashion_mnist.to_image(array).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def load_demo_catalog(size=6000, path=None, batch_size=500, progress=None, seed=0):
    """Create the 10 categories and ``size`` products; products already loaded are skipped.

    Returns ``(created, skipped)``. Each batch is written in one transaction after its
    images are stored, so an interrupted load leaves whole products only and a rerun
    completes it.
    """
    split = fashion_mnist.load_split("train", path)
    if size < 1 or size > len(split.labels):
        raise ValueError(f"--size must be between 1 and {len(split.labels)}.")
    categories = ensure_categories()
    indices = fashion_mnist.stratified_indices(split.labels, size, seed=seed)
    existing = set(
        Product.objects.filter(source_ref__startswith="fashion-mnist:train:").values_list(
            "source_ref", flat=True
        )
    )
    todo = [int(i) for i in indices if source_ref(int(i)) not in existing]
    skipped = len(indices) - len(todo)
    created = 0
    if progress and skipped:
        progress(skipped)
    image_field = Product._meta.get_field("image")
    for start in range(0, len(todo), batch_size):
        batch = todo[start : start + batch_size]
        products = []
        for index in batch:
            label = int(split.labels[index])
            # Per-product seed: the generated fields do not depend on load order or size.
            rng = np.random.default_rng([seed, index])
            title, description, price, stock = generated_fields(index, label, rng)
            product = Product(
                title=title,
                description=description,
                category=categories[label],
                price=price,
                stock=stock,
                source_ref=source_ref(index),
            )
            name = f"fmnist-{index:05d}-{slugify(title)}.png"
            stored = image_field.storage.save(
                image_field.generate_filename(product, name),
                ContentFile(png_bytes(split.images[index])),
            )
            product.image.name = stored
            products.append(product)
        with transaction.atomic():
            Product.objects.bulk_create(products, ignore_conflicts=True)
        created += len(products)
        if progress:
            progress(len(products))
    return created, skipped
