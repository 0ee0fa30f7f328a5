"""factory_boy factories for the shop's models, used through fixtures in conftest.py."""

import io
from decimal import Decimal

import factory
import numpy as np
from django.core.files.base import ContentFile
from PIL import Image

from shop.models import Category, Product


def png_file(seed=0, size=(32, 32), name="p.png"):
    """A tiny generated image: a bright random rectangle on black, like Fashion-MNIST."""
    rng = np.random.default_rng(seed)
    arr = np.zeros((size[1], size[0]), dtype=np.uint8)
    x0, y0 = rng.integers(0, size[0] // 2, 2)
    x1, y1 = x0 + rng.integers(4, size[0] // 2), y0 + rng.integers(4, size[1] // 2)
    arr[y0:y1, x0:x1] = rng.integers(80, 255)
    buf = io.BytesIO()
    Image.fromarray(arr, mode="L").save(buf, format="PNG")
    return ContentFile(buf.getvalue(), name=name)


class CategoryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Category
        django_get_or_create = ["slug"]

    name = factory.Sequence(lambda n: f"Category {n}")
    slug = factory.Sequence(lambda n: f"category-{n}")


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product

    title = factory.Sequence(lambda n: f"Product {n}")
    description = "A product made by a test."
    category = factory.SubFactory(CategoryFactory)
    price = Decimal("19.99")
    stock = 5
    image = factory.Sequence(lambda n: png_file(seed=n, name=f"test-{n}.png"))


def failed_photo(product, reason="cannot identify image file"):
    """Record ``product``'s photo as one the configured encoder could not embed, as a
    reindex does (``IndexFailure``)."""
    from visualsearch.conf import app_settings
    from visualsearch.models import IndexFailure

    return IndexFailure.objects.create(
        product=product,
        encoder=app_settings.ENCODER,
        image_name=product.image.name,
        reason=reason,
    )
