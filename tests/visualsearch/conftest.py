import io
from decimal import Decimal

import numpy as np
import pytest
from django.core.files.base import ContentFile
from PIL import Image

from visualsearch.encoders import get_encoder

ENCODERS = {
    "pixel": "tests.visualsearch.encoders.PixelEncoder",
    "pixel16": "tests.visualsearch.encoders.WidePixelEncoder",
}


@pytest.fixture
def pixel_encoder(settings):
    """Makes the 64-d pixel encoder the configured one (the indexing and search tests use
    it through ``pytestmark``). Encoders are cached by name and class, so no cache clearing
    is needed when another test maps a name elsewhere."""
    settings.VISUALSEARCH_ENCODERS = dict(ENCODERS)
    settings.VISUALSEARCH_ENCODER = "pixel"
    return get_encoder("pixel")


def image_file(color=255, box=(4, 4, 20, 20), size=(32, 32), name="img.png"):
    """A PNG with one rectangle of ``color`` on black."""
    im = Image.new("L", size, 0)
    im.paste(color, box)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return ContentFile(buf.getvalue(), name=name)


def catalogue_image(i, name=None):
    """Image ``i`` of the test catalogue: two rectangles placed and shaded by ``i``."""
    rng = np.random.default_rng(1000 + i)
    im = Image.new("L", (32, 32), 0)
    for _ in range(2):
        x0, y0 = (int(v) for v in rng.integers(0, 20, 2))
        w, h = (int(v) for v in rng.integers(6, 13, 2))
        im.paste(int(rng.integers(60, 256)), (x0, y0, x0 + w, y0 + h))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return ContentFile(buf.getvalue(), name=name or f"catalogue-{i}.png")


@pytest.fixture
def catalogue(pixel_encoder, product_factory, category_factory):
    """30 indexed products in 3 categories of 10: prices 5.00 to 63.00 in steps of 2, every
    fourth out of stock, each with its own image. Returned in creation order."""
    from visualsearch import indexing

    categories = [category_factory(name=f"Kind {c}", slug=f"kind-{c}") for c in range(3)]
    products = [
        product_factory(
            title=f"Item {i}",
            category=categories[i % 3],
            price=Decimal(5 + 2 * i),
            stock=0 if i % 4 == 3 else 3,
            image=catalogue_image(i),
        )
        for i in range(30)
    ]
    indexing.reindex("stale", encoder=pixel_encoder)
    return products
