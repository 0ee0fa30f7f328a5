"""The test catalogue, made with django-oscar's own models.

A product class that tracks stock and one that does not, a category tree (Clothing >
Shirts > Formal, Clothing > Trousers, Home), standalone products and a parent with three
children, each browsable product but one with a tiny generated PNG as its ``ProductImage``,
one non-public product, and partner stock records with prices (the children's on their own
records).
"""

import io
from decimal import Decimal

import numpy as np
from django.core.files.base import ContentFile


def png(seed, size=24):
    """A tiny PNG: a gradient whose direction and colour follow ``seed``, so products of
    one seed family look alike to the pixel encoder and others do not."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 255, size, dtype=np.float32)
    grey = np.add.outer(ramp, ramp) / 2 if seed % 2 else np.add.outer(ramp, ramp[::-1]) / 2
    grey = grey + rng.normal(0, 12, (size, size))
    pixels = np.clip(np.stack([grey, grey * (0.5 + 0.1 * (seed % 5)), 255 - grey], -1), 0, 255)
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


class Catalogue:
    """Handles on the products the tests ask about, by name."""

    def __init__(self):
        self.products = {}
        self.categories = {}

    def __getitem__(self, name):
        return self.products[name]


def build_catalogue():
    from oscar.core.loading import get_model

    Category = get_model("catalogue", "Category")
    Product = get_model("catalogue", "Product")
    ProductClass = get_model("catalogue", "ProductClass")
    ProductCategory = get_model("catalogue", "ProductCategory")
    ProductImage = get_model("catalogue", "ProductImage")
    Partner = get_model("partner", "Partner")
    StockRecord = get_model("partner", "StockRecord")

    catalogue = Catalogue()
    clothing = Category.objects.add_root({"name": "Clothing", "slug": "clothing"})
    shirts = Category.objects.add_child(clothing, {"name": "Shirts", "slug": "shirts"})
    formal = Category.objects.add_child(shirts, {"name": "Formal", "slug": "formal"})
    trousers = Category.objects.add_child(clothing, {"name": "Trousers", "slug": "trousers"})
    home = Category.objects.add_root({"name": "Home", "slug": "home"})
    catalogue.categories = {
        "clothing": clothing,
        "shirts": shirts,
        "formal": formal,
        "trousers": trousers,
        "home": home,
    }
    tracked = ProductClass.objects.create(name="Clothes", slug="clothes", track_stock=True)
    untracked = ProductClass.objects.create(name="Gift cards", slug="gifts", track_stock=False)
    partner = Partner.objects.create(name="Warehouse")

    def product(name, *, categories=(), price=None, stock=5, image_seed=None, **fields):
        fields.setdefault("product_class", tracked)
        item = Product.objects.create(title=name.replace("-", " ").title(), slug=name, **fields)
        for category in categories:
            ProductCategory.objects.create(product=item, category=catalogue.categories[category])
        if image_seed is not None:
            ProductImage.objects.create(
                product=item,
                original=ContentFile(png(image_seed), name=f"{name}.png"),
                display_order=0,
            )
        if price is not None:
            StockRecord.objects.create(
                product=item,
                partner=partner,
                partner_sku=f"sku-{name}",
                price=Decimal(price),
                num_in_stock=stock,
            )
        catalogue.products[name] = item
        return item

    # Shirts and trousers: two looks (seeds 1, 3, 5 are one gradient, 2, 4, 6 the other).
    product("white-shirt", categories=["shirts"], price="30.00", image_seed=1)
    product("dress-shirt", categories=["formal"], price="55.00", image_seed=3)
    product("linen-shirt", categories=["shirts", "home"], price="42.50", image_seed=5, stock=0)
    product("chinos", categories=["trousers"], price="60.00", image_seed=2)
    product("jeans", categories=["trousers"], price="80.00", image_seed=4)
    product("cushion", categories=["home"], price="19.99", image_seed=6)
    product(
        "gift-card",
        categories=["home"],
        price="25.00",
        image_seed=7,
        stock=None,
        product_class=untracked,
    )
    product("no-photo-scarf", categories=["clothing"], price="15.00")
    product("hidden-shirt", categories=["shirts"], price="35.00", image_seed=1, is_public=False)

    # A parent with variants: its price is its cheapest public child's, its stock any
    # child's; the children have no category and no photo of their own.
    parent = product("polo", categories=["shirts"], image_seed=9, structure="parent")
    for size, price, stock, public in (
        ("s", "28.00", 0, True),
        ("m", "24.00", 3, True),
        ("xl", "9.00", 9, False),  # hidden: its price must not count
    ):
        product(
            f"polo-{size}",
            price=price,
            stock=stock,
            parent=parent,
            structure="child",
            product_class=None,
            is_public=public,
        )
    # A second image, later in the gallery: never the one embedded.
    ProductImage.objects.create(
        product=catalogue["white-shirt"],
        original=ContentFile(png(2), name="white-shirt-back.png"),
        display_order=1,
    )
    return catalogue
