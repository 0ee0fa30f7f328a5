"""Heavily compressed JPEG photos are smoothed before search; other photos, flat pictures
and the switched-off case are left alone."""

import io

import numpy as np
import pytest
from PIL import Image

from tests.visualsearch.test_localisation import garment
from visualsearch import search
from visualsearch.deblocking import blockiness, smooth_blocky

#: The default of VISUALSEARCH_BLOCKY_PHOTO_RATIO.
RATIO = 2.2


def jpeg(image, quality):
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return decoded.convert("RGB")


def textured(size=256, seed=0):
    """A photo-like picture: smooth shading with fine detail everywhere, no block grid."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    base = 120 + 60 * np.sin(x / 17.0) * np.cos(y / 23.0)
    pixels = base[..., None] + rng.normal(0, 12, (size, size, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def test_a_heavily_compressed_photo_is_smoothed():
    blocky = jpeg(textured(), quality=5)
    assert blockiness(blocky) >= RATIO > blockiness(textured())
    smoothed = smooth_blocky(blocky, ratio=RATIO)
    assert smoothed is not blocky
    assert smoothed.size == blocky.size and smoothed.mode == "RGB"
    assert blockiness(smoothed) < blockiness(blocky)


def test_the_grid_is_found_whatever_its_phase():
    # Cropped after compression (as a photo turned or trimmed by an app is): the block
    # edges no longer fall on multiples of 8.
    blocky = jpeg(textured(264), quality=5).crop((3, 5, 259, 261))
    assert blockiness(blocky) >= RATIO


def test_photos_flat_pictures_and_the_switched_off_case_are_left_alone(settings):
    photo = textured()
    assert smooth_blocky(photo, ratio=RATIO) is photo
    lightly = jpeg(textured(), quality=90)
    assert smooth_blocky(lightly, ratio=RATIO) is lightly
    flat = Image.new("RGB", (64, 64), (40, 40, 40))
    assert blockiness(flat) < RATIO  # no steps at all
    assert smooth_blocky(flat, ratio=RATIO) is flat
    tiny = jpeg(garment().resize((24, 24)), quality=5)  # too small to show a grid
    assert smooth_blocky(tiny, ratio=RATIO) is tiny
    blocky = jpeg(textured(), quality=5)
    settings.VISUALSEARCH_BLOCKY_PHOTO_RATIO = None
    assert smooth_blocky(blocky) is blocky
    settings.VISUALSEARCH_BLOCKY_PHOTO_RATIO = RATIO
    assert smooth_blocky(blocky) is not blocky


def test_a_large_photo_is_read_through_a_window():
    # 12 megapixels of a heavily compressed picture around a smooth centre: only a central
    # window of whole blocks is read, so the photo counts as smooth.
    tile = jpeg(textured(512, seed=2), quality=5)
    big = Image.new("RGB", (4000, 3000))
    for left in range(0, 4000, 512):
        for top in range(0, 3000, 512):
            big.paste(tile, (left, top))
    assert blockiness(big.crop((0, 0, 1024, 1024))) >= RATIO
    big.paste(textured(512), (1744, 1240))  # the window, on the grid
    assert blockiness(big) < RATIO
    assert smooth_blocky(big, ratio=RATIO) is big


@pytest.mark.django_db
@pytest.mark.parametrize("step", ["brighten_dim", "smooth_blocky"])
def test_photo_search_prepares_each_photo_before_looking_at_it(catalogue, monkeypatch, step):
    """Both preparations (exposure, then deblocking) see every photo searched."""
    from visualsearch.search import photo

    seen = []

    def recording(image):
        seen.append(image)
        return image

    monkeypatch.setattr(photo, step, recording)
    first, second = (Image.new("RGB", (32, 32), c) for c in ((90, 20, 20), (20, 90, 20)))
    search.search_photos([first, second], k=2)
    assert seen == [first, second]
