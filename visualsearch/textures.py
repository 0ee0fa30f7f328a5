"""Procedural surfaces and occluders for shopper-style photos (numpy and Pillow only).

Shoppers photograph a product where it lies: on a striped sofa, a checked tablecloth, a
flowered duvet, a speckled rug, half under a hand or a bag. :mod:`visualsearch.distortions`
composes its harder kinds of photo from these pieces. Every random choice comes from the
``numpy.random.Generator`` passed in, so a seed gives the same picture every time. Nothing
here is downloaded: the textures are drawn.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

__all__ = ["TEXTURES", "cut_out", "hand_or_bag", "muted_colour", "texture"]

#: Kinds of surface :func:`texture` draws.
TEXTURES = ("stripes", "checks", "noise", "florals")
#: Per-channel distance from the backdrop colour, in 0-255 levels, at which a pixel of a
#: catalogue photo starts to count as product (:func:`cut_out`), and where it fully does.
CUT_OUT_LEVELS = (12, 48)


def muted_colour(rng, low=40, high=216):
    """A random RGB colour away from pure black and white: sofas and rugs, not primaries."""
    return tuple(int(c) for c in rng.integers(low, high, size=3))


def _grid(width, height, angle):
    """Pixel coordinates rotated by ``angle`` (radians): ``(u, v)`` arrays of the canvas."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    c, s = np.cos(angle), np.sin(angle)
    return x * c + y * s, -x * s + y * c


def _two_colours(mask, a, b):
    return np.where(mask[..., None], np.asarray(a, np.uint8), np.asarray(b, np.uint8))


def _stripes(width, height, rng):
    u, _v = _grid(width, height, rng.uniform(0, np.pi))
    period = rng.uniform(6, 32)
    mask = (u % period) < period * rng.uniform(0.3, 0.7)
    return _two_colours(mask, muted_colour(rng), muted_colour(rng))


def _checks(width, height, rng):
    u, v = _grid(width, height, rng.uniform(0, np.pi / 2))
    cell = rng.uniform(8, 40)
    mask = ((np.floor(u / cell) + np.floor(v / cell)) % 2).astype(bool)
    return _two_colours(mask, muted_colour(rng), muted_colour(rng))


def _noise(width, height, rng):
    """Fractal value noise mapped between two colours: a speckled rug, a knitted throw."""
    field = np.zeros((height, width), np.float32)
    for octave, weight in ((4, 1.0), (12, 0.5), (40, 0.35)):
        small = rng.random((octave, octave)).astype(np.float32)
        up = Image.fromarray(small, mode="F").resize((width, height), Image.Resampling.BICUBIC)
        field += weight * np.asarray(up)
    field += 0.25 * rng.random((height, width)).astype(np.float32)  # the weave's grain
    field = (field - field.min()) / max(float(np.ptp(field)), 1e-6)
    a = np.asarray(muted_colour(rng), np.float32)
    b = np.asarray(muted_colour(rng), np.float32)
    return (a + (b - a) * field[..., None]).astype(np.uint8)


def _florals(width, height, rng):
    """Scattered five-petal flowers with leaves on a base colour."""
    canvas = Image.new("RGB", (width, height), muted_colour(rng))
    draw = ImageDraw.Draw(canvas)
    petal, heart, leaf = muted_colour(rng, 90, 250), muted_colour(rng), muted_colour(rng, 30, 160)
    radius = rng.uniform(6, 22)
    count = int(width * height / (radius * radius * rng.uniform(6, 14)))
    for _ in range(count):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        r = radius * rng.uniform(0.7, 1.3)
        turn = rng.uniform(0, 2 * np.pi)
        lx, ly = cx + 1.6 * r * np.cos(turn + 0.5), cy + 1.6 * r * np.sin(turn + 0.5)
        draw.ellipse((lx - r * 0.6, ly - r * 0.3, lx + r * 0.6, ly + r * 0.3), fill=leaf)
        for i in range(5):
            angle = turn + i * 2 * np.pi / 5
            px, py = cx + r * 0.55 * np.cos(angle), cy + r * 0.55 * np.sin(angle)
            draw.ellipse((px - r * 0.45, py - r * 0.45, px + r * 0.45, py + r * 0.45), fill=petal)
        draw.ellipse((cx - r * 0.3, cy - r * 0.3, cx + r * 0.3, cy + r * 0.3), fill=heart)
    return np.asarray(canvas)


_DRAW = {"stripes": _stripes, "checks": _checks, "noise": _noise, "florals": _florals}


def texture(size, rng, kind=None) -> Image.Image:
    """A ``size`` (width, height) RGB surface of ``kind`` (one of :data:`TEXTURES`; drawn at
    random when ``None``), softened a little as a camera lens would."""
    if kind is None:
        kind = TEXTURES[int(rng.integers(len(TEXTURES)))]
    if kind not in _DRAW:
        raise ValueError(f"kind must be one of {TEXTURES}, got {kind!r}.")
    width, height = (int(v) for v in size)
    pixels = _DRAW[kind](width, height, rng)
    return Image.fromarray(pixels, mode="RGB").filter(ImageFilter.GaussianBlur(0.6))


def cut_out(image: Image.Image, backdrop) -> Image.Image:
    """The alpha mask (mode ``"L"``) of the product in a catalogue photo on a plain
    ``backdrop`` colour (see :func:`visualsearch.encoders.preprocessing.foreground_box`).

    A pixel is product as it differs from the backdrop, ramping over
    :data:`CUT_OUT_LEVELS`; holes inside the product's outline (a dark print on a light
    garment, a garment as dark as its backdrop in places) are filled, so that the surface
    shows around the product and not through it. With no backdrop (``None``) the whole
    photo is opaque: a photographed print-out.
    """
    from scipy import ndimage

    if backdrop is None:
        return Image.new("L", image.size, 255)
    rgb = np.asarray(image.convert("RGB"), np.int16)
    distance = np.abs(rgb - np.asarray(backdrop, np.int16)).max(axis=2)
    low, high = CUT_OUT_LEVELS
    alpha = np.clip((distance - low) / (high - low), 0.0, 1.0)
    solid = ndimage.binary_fill_holes(ndimage.binary_closing(alpha > 0.5, iterations=2))
    alpha = np.maximum(alpha, solid)
    mask = Image.fromarray((alpha * 255).astype(np.uint8), mode="L")
    return mask.filter(ImageFilter.GaussianBlur(0.8))


def _occluder_shape(length, thickness, hand):
    """The mask of a hand or bag lying along the x axis, coming in from the left: ``length``
    by ``thickness`` pixels, fingers (for a hand) at its right end."""
    length, thickness = max(4, int(length)), max(4, int(thickness))
    mask = Image.new("L", (length, thickness), 0)
    draw = ImageDraw.Draw(mask)
    if not hand:
        draw.rounded_rectangle(
            (0, thickness * 0.1, length - 1, thickness * 0.9), radius=thickness // 6, fill=255
        )
        draw.rectangle((0, thickness * 0.45, length - 1, thickness * 0.55), fill=0)  # a seam
        return mask
    palm = length * 0.65
    draw.ellipse((-palm * 0.5, 0, palm, thickness - 1), fill=255)
    for i in range(4):
        cy = thickness * (0.2 + 0.2 * i)
        draw.ellipse(
            (palm * 0.7, cy - thickness * 0.08, length - 1, cy + thickness * 0.08), fill=255
        )
    return mask


def hand_or_bag(size, box, rng) -> tuple[Image.Image, Image.Image]:
    """An occluder over part of ``box`` (x0, y0, x1, y1) on a canvas of ``size``: a hand
    (a skin-toned palm with fingers) or a bag (a dark rounded block), coming in from one
    side. Returns ``(colour, mask)`` to composite with ``Image.paste``.

    It reaches a quarter to a half of the way across the box, as a hand holding a garment
    up or a bag put down on it does.
    """
    x0, y0, x1, y1 = box
    side = int(rng.integers(4))  # 0 from the left, 1 right, 2 top, 3 bottom
    across, along = (x1 - x0, y1 - y0) if side < 2 else (y1 - y0, x1 - x0)
    reach = across * rng.uniform(0.25, 0.5)
    hand = bool(rng.random() < 0.5)
    shape = _occluder_shape(reach * 1.6, along * rng.uniform(0.3, 0.45), hand)
    # Drawn coming in from the left; turned to come in from the chosen side.
    turn = (
        None,
        Image.Transpose.FLIP_LEFT_RIGHT,
        Image.Transpose.ROTATE_270,
        Image.Transpose.ROTATE_90,
    )
    if turn[side] is not None:
        shape = shape.transpose(turn[side])
    offset = rng.uniform(0.2, 0.8) * along - (shape.height if side < 2 else shape.width) / 2
    if side == 0:
        position = (x0 + reach - shape.width, y0 + offset)
    elif side == 1:
        position = (x1 - reach, y0 + offset)
    elif side == 2:
        position = (x0 + offset, y0 + reach - shape.height)
    else:
        position = (x0 + offset, y1 - reach)
    mask = Image.new("L", (int(size[0]), int(size[1])), 0)
    mask.paste(shape, tuple(int(round(v)) for v in position))
    if hand:
        colour = np.asarray((224, 172, 140)) * rng.uniform(0.55, 1.05)
    else:
        colour = np.asarray(muted_colour(rng, 20, 120))
    shade = Image.new("RGB", mask.size, tuple(int(c) for c in np.clip(colour, 0, 255)))
    return shade, mask.filter(ImageFilter.GaussianBlur(1.0))
