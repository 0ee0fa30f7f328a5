"""Seeded "shopper photo" distortions: the model of what a shopper uploads.

A shopper rarely uploads the catalogue image itself: they photograph the product at an angle,
off-centre, on a table or a bed, in poor light, and the photo is recompressed by a messaging
app. :func:`distort` imitates that. It serves twice, on disjoint products: the catalogue
projection learns from pairs of catalogue photos and their distorted copies which changes to
ignore (:func:`visualsearch.encoders.projection.fit_whitening`), and ``evaluate_visual``
measures with other products' distorted copies whether search still finds the original
(:func:`visualsearch.evaluation.robust_hit_at_k`). Every random choice comes from the
``numpy.random.Generator`` passed in, so both are reproducible from their seed.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageEnhance

__all__ = ["display_copy", "distort"]

#: Fraction of each side kept by the random crop: shoppers frame the product loosely.
CROP_KEEP = (0.8, 1.0)
#: Tilt of a hand-held phone, in degrees.
MAX_ROTATION = 15.0
#: Relative resampling of the image size (camera distance, resolution).
SCALE = (0.7, 1.3)
#: Brightness and contrast factors (1.0 = unchanged).
BRIGHTNESS = (0.75, 1.25)
CONTRAST = (0.75, 1.25)
#: Padding added on each side, as a fraction of that side: the product on a surface.
PAD = (0.0, 0.15)
#: Aggressive recompression, as messaging apps do.
JPEG_QUALITY = 30


def display_copy(image: Image.Image, size: int = 224) -> Image.Image:
    """The product photo as the shop displays it, longer side ``size`` pixels (bicubic).

    A shopper photographs the product, or the shop's page, never the stored file: a tiny
    source image (Fashion-MNIST's are 28 pixels) reaches them upscaled, a huge one scaled
    down. Distort this copy, not the file.
    """
    scale = size / max(image.size)
    return image.resize(
        (max(1, round(image.width * scale)), max(1, round(image.height * scale))),
        Image.Resampling.BICUBIC,
    )


def distort(image: Image.Image, rng) -> Image.Image:
    """Return a randomly distorted RGB copy of ``image``, as a shopper's photo of it.

    Applied in the order a real photo is made: framing (crop), distance (scale), tilt
    (rotation, revealing more of the backdrop), the surface around the product (padding), lighting
    (brightness, contrast), then JPEG recompression at quality 30.

    Parameters
    ----------
    image : PIL.Image.Image
        Any mode; converted to RGB.
    rng : numpy.random.Generator or int
        Source of every random choice; an int is used as a seed.

    Returns
    -------
    PIL.Image.Image
        RGB image whose size differs from the input's.
    """
    rng = np.random.default_rng(rng)
    im = image.convert("RGB")
    # A muted random colour: tables, beds, floors rather than saturated primaries.
    background = tuple(int(c) for c in rng.integers(40, 216, size=3))

    # Random crop keeping CROP_KEEP of each side.
    w, h = im.size
    cw = max(1, round(w * rng.uniform(*CROP_KEEP)))
    ch = max(1, round(h * rng.uniform(*CROP_KEEP)))
    x0 = int(rng.integers(0, w - cw + 1))
    y0 = int(rng.integers(0, h - ch + 1))
    im = im.crop((x0, y0, x0 + cw, y0 + ch))

    # Scale.
    s = rng.uniform(*SCALE)
    im = im.resize(
        (max(1, round(im.width * s)), max(1, round(im.height * s))), Image.Resampling.BILINEAR
    )

    # Camera tilt. A tilted camera sees more of the product's own surroundings, so the
    # uncovered corners take the image's border colour (its backdrop), not the surface colour:
    # coloured wedges would model a photo of a printed picture rather than of the product.
    angle = rng.uniform(-MAX_ROTATION, MAX_ROTATION)
    border = np.concatenate(
        [np.asarray(im)[[0, -1]].reshape(-1, 3), np.asarray(im)[:, [0, -1]].reshape(-1, 3)]
    )
    backdrop = tuple(int(c) for c in np.median(border, axis=0))
    im = im.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True, fillcolor=backdrop)

    # Padding on the coloured background, unevenly on each side (off-centre framing).
    left, top, right, bottom = (
        round(side * rng.uniform(*PAD)) for side in (im.width, im.height, im.width, im.height)
    )
    canvas = Image.new("RGB", (im.width + left + right, im.height + top + bottom), background)
    canvas.paste(im, (left, top))
    im = canvas

    # Lighting.
    im = ImageEnhance.Brightness(im).enhance(rng.uniform(*BRIGHTNESS))
    im = ImageEnhance.Contrast(im).enhance(rng.uniform(*CONTRAST))

    # Recompression.
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=JPEG_QUALITY)
    buf.seek(0)
    with Image.open(buf) as jpeg:
        return jpeg.convert("RGB")
