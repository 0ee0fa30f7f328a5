"""Thumbnails enlarged by repeating their pixels are found and enlarged smoothly instead."""

import io

import numpy as np
from PIL import Image, ImageFilter

from visualsearch.pixelation import pixel_size, smooth_pixelated


def thumbnail(side=16, seed=0):
    """A small picture with sharp steps between its pixels, as a product's thumbnail has."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8))


def as_jpeg(image, quality):
    data = io.BytesIO()
    image.save(data, "JPEG", quality=quality)
    return Image.open(io.BytesIO(data.getvalue())).convert("RGB")


def test_an_enlargement_by_repeated_pixels_is_found_at_any_scale():
    small = thumbnail()
    for size in ((160, 160), (150, 150), (224, 192)):  # whole, and not whole, factors
        big = small.resize(size, Image.Resampling.NEAREST)
        assert pixel_size(big) == (16, 16)
        smooth = smooth_pixelated(big)
        assert smooth.size == big.size  # regions found in it keep their coordinates
        expected = np.asarray(small.resize(size, Image.Resampling.BICUBIC), dtype=np.int16)
        assert np.abs(np.asarray(smooth, dtype=np.int16) - expected).mean() < 1
    # Saved as a JPEG, its squares carry a little noise: still found.
    big = as_jpeg(small.resize((256, 256), Image.Resampling.NEAREST), 90)
    assert pixel_size(big) == (16, 16) and smooth_pixelated(big) is not big


def test_photos_drawings_and_plain_pictures_are_left_as_they_are():
    rng = np.random.default_rng(1)
    # A photo: smooth shading, an edge, sensor noise.
    y, x = np.mgrid[0:240, 0:320]
    shade = 80 + 100 * np.exp(-((x - 160) ** 2 + (y - 120) ** 2) / 5000.0)
    photo = np.clip(shade[..., None] + rng.normal(0, 4, (240, 320, 3)), 0, 255).astype(np.uint8)
    flat = Image.new("RGB", (300, 200), (200, 190, 180))
    # A sharp drawing whose edges are not on any grid, and a blurred enlargement: both have
    # steps next to each other somewhere.
    drawing = Image.new("RGB", (300, 300), "white")
    drawing.paste((0, 0, 0), (37, 41, 250, 43))
    drawing.paste((0, 0, 0), (100, 90, 103, 280))
    blurred = (
        thumbnail().resize((160, 160), Image.Resampling.NEAREST).filter(ImageFilter.GaussianBlur(2))
    )
    for image in (Image.fromarray(photo), flat, drawing, blurred, thumbnail()):
        assert pixel_size(image) is None
        assert smooth_pixelated(image) is image


def test_squares_that_do_not_repeat_one_picture_are_refused():
    """Steps spaced like squares, but the squares are not flat (shaded inside, as tiles
    of a photo would be): not an enlargement."""
    big = np.asarray(thumbnail().resize((160, 160), Image.Resampling.NEAREST), dtype=np.int16)
    ramp = (np.arange(160) % 10) * 4  # 0 to 36 across each square, below a step
    shaded = np.clip(big + ramp[None, :, None] - 18, 0, 255).astype(np.uint8)
    image = Image.fromarray(shaded)
    assert pixel_size(image) == (16, 16)  # spaced like squares...
    assert smooth_pixelated(image) is image  # ...that do not repeat a small picture
