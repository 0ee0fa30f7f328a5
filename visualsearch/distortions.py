"""Seeded "shopper photo" distortions: the model of what a shopper uploads.

A shopper rarely uploads the catalogue image itself: they photograph the product at an angle,
off-centre, on a table or a bed, in poor light, and the photo is recompressed by a messaging
app. :func:`distort` imitates that. It serves twice, on disjoint products: the catalogue
projection learns from pairs of catalogue photos and their distorted copies which changes to
ignore (:func:`visualsearch.encoders.projection.fit_whitening`), and ``evaluate_visual``
measures with other products' distorted copies whether search still finds the original
(:func:`visualsearch.evaluation.robust_hit_at_k`). Every random choice comes from the
``numpy.random.Generator`` passed in, so both are reproducible from their seed.

:func:`distort` is the first kind of photo this model knew, ``"standard"``: the product
fills the frame. Shoppers also photograph products as they find them, so
:func:`shopper_photo` makes six harder kinds (:data:`KINDS`) as well, and says where the
photographed product is in each (:class:`ShopperPhoto`):

``"textured"``
    the product small in the frame (a quarter to under half of its shorter side) on a
    striped, checked, speckled or flowered surface (:mod:`visualsearch.textures`);
``"two_products"``
    the product beside another catalogue product (``other``), on a plain or textured surface;
``"occluded"``
    a hand or a bag over a quarter to half of the product's width or height;
``"low_light"``
    a dim room: gamma 1.6-2.6, exposure 0.45-0.8, a warm cast, sensor noise;
``"perspective"``
    a phone held at a steep angle: the far side of the scene 35-55% shorter than the near
    one and foreshortened by 10-25%;
``"heavy_jpeg"``
    a photo forwarded through messaging apps: a third to 60% of its size, JPEG quality 5-12.

Each harder kind also tilts the product a little and lights the scene at random. The product
is cut out of its catalogue photo's plain backdrop (:func:`visualsearch.textures.cut_out`)
and laid on the surface, as a garment lies on a sofa.

This module is long because each kind of photo is documented where it is made.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageEnhance

from . import textures

__all__ = ["BASE_KIND", "KINDS", "ShopperPhoto", "display_copy", "distort", "shopper_photo"]

#: Kinds of shopper photo, the first being :func:`distort`'s (see the module docstring).
KINDS = (
    "standard",
    "textured",
    "two_products",
    "occluded",
    "low_light",
    "perspective",
    "heavy_jpeg",
)
#: The kind measured before the harder ones existed: the product filling the frame.
BASE_KIND = "standard"

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


@dataclass(frozen=True)
class ShopperPhoto:
    """A shopper-style photo of a catalogue product.

    Attributes
    ----------
    image : PIL.Image.Image
        RGB.
    box : tuple of int
        ``(x0, y0, x1, y1)``, where the photographed product is in ``image`` (right and
        bottom exclusive); the whole image for the ``"standard"`` kind.
    kind : str
        One of :data:`KINDS`.
    """

    image: Image.Image
    box: tuple
    kind: str


def _jpeg(image, quality):
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    with Image.open(buf) as jpeg:
        return jpeg.convert("RGB")


def _product_layer(image, side, rng, max_tilt=10.0):
    """The product of a catalogue photo cut out of its backdrop: ``(rgb, alpha)`` with the
    longer side ``side`` pixels, tilted by up to ``max_tilt`` degrees."""
    from .encoders.preprocessing import foreground_box

    rgb = image.convert("RGB")
    box, backdrop = foreground_box(rgb)
    rgb = rgb.crop(box)
    alpha = textures.cut_out(rgb, backdrop)
    scale = side / max(rgb.size)
    size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
    rgb = rgb.resize(size, Image.Resampling.BICUBIC)
    alpha = alpha.resize(size, Image.Resampling.BILINEAR)
    angle = rng.uniform(-max_tilt, max_tilt)
    rgb = rgb.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True)
    alpha = alpha.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True)
    return rgb, alpha


def _place(canvas, layer, position):
    """Paste a product layer at ``position``; returns the box its opaque pixels cover."""
    rgb, alpha = layer
    x, y = (int(round(v)) for v in position)
    canvas.paste(rgb, (x, y), alpha)
    inner = alpha.point(lambda v: 255 if v > 64 else 0).getbbox() or (0, 0, *alpha.size)
    return (
        max(0, x + inner[0]),
        max(0, y + inner[1]),
        min(canvas.width, x + inner[2]),
        min(canvas.height, y + inner[3]),
    )


def _surface(size, rng, textured_share=0.0):
    """A plain muted surface, or a texture with probability ``textured_share``."""
    if rng.random() < textured_share:
        return textures.texture(size, rng)
    return Image.new("RGB", tuple(int(v) for v in size), textures.muted_colour(rng))


def _light(image, rng, spread=0.2):
    image = ImageEnhance.Brightness(image).enhance(rng.uniform(1 - spread, 1 + spread))
    return ImageEnhance.Contrast(image).enhance(rng.uniform(1 - spread, 1 + spread))


def _on_surface(image, rng, fill=(0.6, 0.85), textured_share=0.0):
    """The product large on a surface, off-centre: ``(canvas, box)``."""
    width = int(rng.integers(240, 321))
    height = int(round(width * rng.uniform(0.8, 1.25)))
    canvas = _surface((width, height), rng, textured_share)
    layer = _product_layer(image, min(width, height) * rng.uniform(*fill), rng)
    x = rng.uniform(0, max(1, width - layer[0].width))
    y = rng.uniform(0, max(1, height - layer[0].height))
    return canvas, _place(canvas, layer, (x, y))


def _textured(image, rng, other=None):
    width = int(rng.integers(320, 449))
    height = int(round(width * rng.uniform(0.75, 1.33)))
    canvas = textures.texture((width, height), rng)
    layer = _product_layer(image, min(width, height) * rng.uniform(0.25, 0.45), rng)
    x = rng.uniform(0, width - layer[0].width)
    y = rng.uniform(0, height - layer[0].height)
    box = _place(canvas, layer, (x, y))
    return _jpeg(_light(canvas, rng), rng.integers(50, 86)), box


def _two_products(image, rng, other=None):
    if other is None:
        raise ValueError('The "two_products" kind needs the other product\'s photo (other=).')
    height = int(rng.integers(240, 321))
    width = int(round(height * rng.uniform(1.6, 2.0)))
    canvas = _surface((width, height), rng, textured_share=0.5)
    layers = [_product_layer(im, height * rng.uniform(0.55, 0.8), rng) for im in (image, other)]
    target_left = bool(rng.random() < 0.5)
    boxes = []
    for slot, (rgb, alpha) in enumerate(layers if target_left else layers[::-1]):
        x = width / 2 * slot + rng.uniform(0, max(1, width / 2 - rgb.width))
        y = rng.uniform(0, max(1, height - rgb.height))
        boxes.append(_place(canvas, (rgb, alpha), (x, y)))
    box = boxes[0] if target_left else boxes[1]
    return _jpeg(_light(canvas, rng), rng.integers(50, 86)), box


def _occluded(image, rng, other=None):
    canvas, box = _on_surface(image, rng, textured_share=0.25)
    shade, mask = textures.hand_or_bag(canvas.size, box, rng)
    canvas.paste(shade, (0, 0), mask)
    return _jpeg(_light(canvas, rng), rng.integers(40, 81)), box


def _low_light(image, rng, other=None):
    canvas, box = _on_surface(image, rng)
    pixels = np.asarray(canvas, np.float32) / 255.0
    pixels = pixels ** rng.uniform(1.6, 2.6) * rng.uniform(0.45, 0.8)
    pixels *= np.asarray([1.0, rng.uniform(0.8, 0.95), rng.uniform(0.6, 0.85)], np.float32)
    sigma = rng.uniform(4, 12) / 255.0
    noise = rng.normal(0, sigma, pixels.shape[:2])[..., None]  # luminance
    noise = noise + rng.normal(0, sigma * 0.5, pixels.shape)  # colour
    pixels = np.clip(pixels + noise, 0, 1) * 255
    return _jpeg(Image.fromarray(pixels.astype(np.uint8), "RGB"), rng.integers(50, 76)), box


def _perspective_coefficients(source, target):
    """The 8 coefficients of :data:`PIL.Image.Transform.PERSPECTIVE` that map each point of
    ``target`` (output) onto its point of ``source`` (input)."""
    rows = []
    for (x, y), (u, v) in zip(target, source, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    return np.linalg.solve(np.asarray(rows, float), np.asarray(source, float).ravel())


def _perspective(image, rng, other=None):
    canvas, box = _on_surface(image, rng, fill=(0.5, 0.7))
    w, h = canvas.size
    corners = [(0, 0), (w, 0), (w, h), (0, h)]
    # The far side of the scene is 35-55% shorter and nearer the middle (foreshortened):
    # pull the ends of one side inwards, along it and towards the opposite side.
    side = int(rng.integers(4))
    squeeze, foreshorten = rng.uniform(0.175, 0.275), rng.uniform(0.1, 0.25)
    moved = [np.asarray(c, float) for c in corners]
    a, b = side, (side + 1) % 4
    along = moved[b] - moved[a]
    inwards = moved[(side + 3) % 4] - moved[a]  # from this side to the opposite one
    moved[a] = moved[a] + along * squeeze + inwards * foreshorten
    moved[b] = moved[b] - along * squeeze + inwards * foreshorten
    moved = [tuple(m) for m in moved]
    coefficients = _perspective_coefficients(corners, moved)
    backdrop = canvas.getpixel((0, 0))
    warped = canvas.transform(
        canvas.size,
        Image.Transform.PERSPECTIVE,
        tuple(coefficients),
        Image.Resampling.BILINEAR,
        fillcolor=backdrop,
    )
    box = _warped_box(box, corners, moved, canvas.size)
    return _jpeg(_light(warped, rng), rng.integers(50, 81)), box


def _warped_box(box, corners, moved, size):
    """Where ``box`` lands once ``corners`` moved to ``moved``: the bounding box of its
    corners under the forward map."""
    forward = _perspective_coefficients(moved, corners)
    a, b, c, d, e, f, g, h = forward
    xs, ys = [], []
    for x, y in ((box[0], box[1]), (box[2], box[1]), (box[2], box[3]), (box[0], box[3])):
        den = g * x + h * y + 1
        xs.append((a * x + b * y + c) / den)
        ys.append((d * x + e * y + f) / den)
    return (
        max(0, int(min(xs))),
        max(0, int(min(ys))),
        min(size[0], int(np.ceil(max(xs)))),
        min(size[1], int(np.ceil(max(ys)))),
    )


def _heavy_jpeg(image, rng, other=None):
    canvas, box = _on_surface(image, rng)
    scale = rng.uniform(0.35, 0.6)
    small = canvas.resize(
        (max(1, round(canvas.width * scale)), max(1, round(canvas.height * scale))),
        Image.Resampling.BILINEAR,
    )
    box = tuple(int(round(v * scale)) for v in box)
    return _jpeg(_light(small, rng, 0.1), rng.integers(5, 13)), box


def _standard(image, rng, other=None):
    photo = distort(image, rng)
    return photo, (0, 0, *photo.size)


_KIND_MAKERS = {
    "standard": _standard,
    "textured": _textured,
    "two_products": _two_products,
    "occluded": _occluded,
    "low_light": _low_light,
    "perspective": _perspective,
    "heavy_jpeg": _heavy_jpeg,
}


def shopper_photo(image, rng, kind=BASE_KIND, other=None) -> ShopperPhoto:
    """A shopper-style photo of ``image`` of the given ``kind`` (see the module docstring).

    Parameters
    ----------
    image : PIL.Image.Image
        The product's photo at display size (:func:`display_copy`), any mode.
    rng : numpy.random.Generator or int
        Source of every random choice; an int is used as a seed.
    kind : str
        One of :data:`KINDS`; ``"standard"`` is :func:`distort`.
    other : PIL.Image.Image, optional
        Another product's display-size photo, for ``"two_products"`` (required there).

    Returns
    -------
    ShopperPhoto
    """
    if kind not in _KIND_MAKERS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}.")
    photo, box = _KIND_MAKERS[kind](image, np.random.default_rng(rng), other)
    return ShopperPhoto(photo, tuple(int(v) for v in box), kind)
