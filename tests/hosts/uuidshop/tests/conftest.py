import io
import os

import numpy as np
import pytest
from django.core.files.base import ContentFile
from PIL import Image, ImageDraw


@pytest.fixture(scope="session")
def django_db_modify_db_settings():
    """A test database of this process's own: other test runs share the server."""
    from django.conf import settings

    settings.DATABASES["default"].setdefault("TEST", {})["NAME"] = f"test_uuidshop_{os.getpid()}"


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def photo(seed: int) -> bytes:
    """A 160 px product-like photo: a coloured shape on a light background, one per seed."""
    rng = np.random.default_rng(seed)
    colour = tuple(int(c) for c in rng.integers(0, 200, 3))
    image = Image.new("RGB", (160, 160), (245, 245, 240))
    draw = ImageDraw.Draw(image)
    box = [int(v) for v in (20 + 10 * (seed % 3), 20, 140, 140 - 12 * (seed % 4))]
    kind = seed % 3
    if kind == 0:
        draw.ellipse(box, fill=colour)
    elif kind == 1:
        draw.rectangle(box, fill=colour)
        for x in range(box[0], box[2], 12):
            draw.line([x, box[1], x, box[3]], fill=(255, 255, 255), width=3)
    else:
        draw.polygon([(80, box[1]), (box[2], box[3]), (box[0], box[3])], fill=colour)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def shop(db):
    """Two departments, nine photographed items (some in both departments), one item
    without a photo and one unlisted item."""
    from catalog.models import Department, Item, ItemPhoto

    shoes, sale = Department.objects.create(name="Shoes"), Department.objects.create(name="Sale")
    items = []
    for i in range(9):
        item = Item.objects.create(name=f"Item {i}", price_cents=1099 + 500 * i, quantity=i % 4)
        item.departments.add(shoes if i % 2 else sale)
        if i % 3 == 0:
            item.departments.add(sale, shoes)
        ItemPhoto.objects.create(item=item, file=ContentFile(photo(i), name=f"item{i}.png"))
        items.append(item)
    bare = Item.objects.create(name="No photo", price_cents=999, quantity=1)
    hidden = Item.objects.create(name="Unlisted", price_cents=1500, quantity=3, listed=False)
    hidden.departments.add(shoes, sale)
    ItemPhoto.objects.create(item=hidden, file=ContentFile(photo(0), name="hidden.png"))
    return {"items": items, "bare": bare, "hidden": hidden, "shoes": shoes, "sale": sale}
