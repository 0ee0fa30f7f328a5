"""Robust, bounded image decoding for visual search.

Shoppers upload whatever their phone or browser produced: rotated JPEGs that rely on EXIF
orientation, transparent PNGs, palette GIFs, CMYK JPEGs from print workflows, 16-bit PNGs,
animated WebPs. Encoders expect an upright RGB image, so every image entering the visual-search
pipeline (catalogue indexing and query uploads alike) goes through :func:`open_image` or
:func:`open_image_parts`; treating both sides identically is what keeps their embeddings
comparable.

Decoding is also where a small file becomes a large cost: a flat 16-bit PNG of a few kilobytes
decodes into 80 MB, and every full-size copy made on the way to RGB (EXIF rotation,
compositing transparency, scaling wide greys through float64) multiplies that. So an image is
decoded only as large as its caller needs (``min_side``: :data:`WORKING_SIZE` for the
encoders, ``VISUALSEARCH_PREVIEW_SIZE`` for the shopper's preview), reduced by the largest
integer factor that keeps its longer side at least that: a JPEG by libjpeg itself, at 1/2,
1/4 or 1/8 scale (``Image.draft``); any other format decoded at full size once, then
converted to RGB and box-reduced strip by strip, so that besides the decoded frame only about
a megabyte is ever converted at a time. Rotation is applied to the reduced result. What
decoding will cost is estimated from the header (:func:`decode_cost`) and refused beyond
``4 * max_pixels`` bytes, the size of a plain RGB frame of ``max_pixels``: the peak memory of
one image is bounded by the pixel cap whatever its format, bit depth or compression.

Which sizes and formats an upload may have is decided by :mod:`visualsearch.uploads`; the
catalogue's cap is ``VISUALSEARCH_MAX_CATALOGUE_PIXELS``.

This module is long because each format's decoding cost and its bound are worked out and
documented where they are enforced; a third of it is that documentation.
"""

from __future__ import annotations

import io
import math
import os
import warnings

from PIL import ExifTags, Image, UnidentifiedImageError

__all__ = [
    "WORKING_SIZE",
    "InvalidCrop",
    "TooManyPixels",
    "UnreadableImage",
    "check_box",
    "crop",
    "decode_cost",
    "open_image",
    "open_image_parts",
]

#: Transparent pixels are composited on white: product shots are conventionally on white, and
#: black (what a plain ``convert("RGB")`` gives) would make cut-out products look dark.
BACKGROUND = (255, 255, 255)

#: The size images are reduced to for the encoders, catalogue and query alike: by the largest
#: integer factor that keeps their longer side at least this, so that it ends between 1024
#: and 2047 pixels (16 MB at most); the sizes shops serve are not touched at all. The
#: encoders frame the product and resize it to their 224-pixel input, box-reducing by an
#: integer factor first (``to_batch``'s ``reducing_gap``): an earlier box or JPEG reduction by
#: an integer factor is the same kind of step, taken sooner, and changes embeddings by float
#: noise only (cosine above 0.999 for camera-size photos, ``tests/visualsearch/
#: test_indexing.py``), where resizing to exactly 1024 pixels changed them more (0.998).
WORKING_SIZE = 1024

#: Bytes of decoding budget per pixel of ``max_pixels``: one plain RGB(A) frame (Pillow stores
#: RGB in four bytes a pixel).
BUDGET_BYTES_PER_PIXEL = 4
#: Bytes per pixel of the decoded frame in the modes that take fewer than four.
_MODE_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}
#: Pillow decodes every WebP through libwebp's animation decoder: two RGBA canvases, the frame
#: copied out as bytes, and the image itself (15 bytes a pixel measured on a still photo).
_WEBP_BYTES = 16
#: Pixels in one strip of the conversion to RGB: about a megabyte whatever the image's size.
_STRIP_PIXELS = 1 << 18

_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
#: The quarter turns a shopper may ask for, clockwise, as the transposes that make them.
TURNS = {
    90: Image.Transpose.ROTATE_270,
    180: Image.Transpose.ROTATE_180,
    270: Image.Transpose.ROTATE_90,
}


def _turned_orientations():
    """``{(orientation, turn): orientation}``: the EXIF orientation that shows the stored
    image as ``orientation`` does, then turned ``turn`` degrees clockwise; found by showing
    a 3 x 2 image of distinct pixels each way."""
    probe = Image.frombytes("L", (3, 2), bytes(range(6)))
    shown = {o: probe.transpose(_TRANSPOSE[o]) if o in _TRANSPOSE else probe for o in range(1, 9)}
    look = {o: (im.size, im.tobytes()) for o, im in shown.items()}
    table = {}
    for orientation, im in shown.items():
        for turn in TURN_DEGREES:
            turned = im.transpose(TURNS[turn]) if turn else im
            target = turned.size, turned.tobytes()
            table[orientation, turn] = next(o for o in look if look[o] == target)
    return table


#: The turns a shopper may ask for, in degrees clockwise (0: none).
TURN_DEGREES = (0, *TURNS)
_TURNED = _turned_orientations()
_WIDE_GREY = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_ALPHA = ("RGBA", "LA", "RGBa", "La", "PA")


class UnreadableImage(ValueError):
    """The data is not an image Pillow can decode (truncated, corrupt or not an image)."""


class TooManyPixels(UnreadableImage):
    """The image is larger than the caller accepts, or would take more memory to decode.

    ``width`` and ``height`` are the image's (``None`` when Pillow refused it as a
    decompression bomb before saying), ``limit`` the most pixels accepted for a file of its
    kind: ``max_pixels`` itself, or fewer for a format that needs more than
    :data:`BUDGET_BYTES_PER_PIXEL` bytes a pixel to decode (``format``, and ``progressive``
    for a progressive JPEG).
    """

    def __init__(
        self, message, *, width=None, height=None, limit=None, format=None, progressive=False
    ):
        super().__init__(message)
        self.width, self.height, self.limit = width, height, limit
        self.format, self.progressive = format, progressive


class InvalidCrop(ValueError):
    """A crop box does not describe a non-empty rectangle inside the image.

    ``size`` is the size the box was checked against, when known.
    """

    def __init__(self, message, size=None):
        super().__init__(message)
        self.size = size


def open_image(fp, *, min_side=None, max_pixels=None) -> Image.Image:
    """Decode an image file into an upright, fully loaded RGB image.

    Parameters
    ----------
    fp : str, os.PathLike, bytes or file-like object
        The encoded image. File objects are read from their current position; Django's
        ``UploadedFile`` and ``FieldFile`` work as they are.
    min_side : int, optional
        The longer side the caller needs: a larger image is reduced by the largest integer
        factor that keeps its longer side at least this (decoded at a reduced scale where
        its format allows, else box-reduced while it is converted), so it comes back with
        its longer side between ``min_side`` and twice that. ``None``: full size.
    max_pixels : int, optional
        Refuse images of more pixels, or whose decoding would take more memory than a plain
        RGB frame of that many pixels (:func:`decode_cost`), before decoding them.

    Returns
    -------
    PIL.Image.Image
        Mode ``"RGB"``, with EXIF orientation applied, transparency flattened on white and,
        for animations, only the first frame. The pixels are loaded, so the caller may close
        the source file.

    Raises
    ------
    TooManyPixels
        If the image is over ``max_pixels``, or a decompression bomb by Pillow's own limit.
    UnreadableImage
        If the data cannot be decoded.
    """
    _size, [image] = open_image_parts(fp, [(None, min_side)], max_pixels=max_pixels)
    return image


def open_image_parts(fp, parts, *, max_pixels=None, turn=0):
    """Decode the parts of an image that the caller needs, each no larger than it needs.

    A photo search needs the whole photo for the shopper's preview and the area they chose
    for the encoder, at different sizes: decoding once for both, at the scale the most
    detailed part needs, is what keeps a 40-megapixel upload cheap.

    Parameters
    ----------
    fp : str, os.PathLike, bytes or file-like object
        As for :func:`open_image`.
    parts : sequence of ``(box, min_side)``
        ``box`` is ``(x0, y0, x1, y1)`` in pixels of the upright full-size image (as
        :func:`crop` takes it), or ``None`` for the whole image; ``min_side`` as for
        :func:`open_image`, for the box. Equal parts give the same image object.
    max_pixels : int, optional
        As for :func:`open_image`.
    turn : int
        Degrees clockwise (0, 90, 180 or 270) to turn the upright image by, as a shopper
        asks for a photo that was saved sideways: "upright" below includes the turn.

    Returns
    -------
    size : tuple of int
        ``(width, height)`` of the upright full-size image, whatever the parts' sizes.
    images : list of PIL.Image.Image
        One RGB image per part, as :func:`open_image` describes: the box, at full size or
        reduced by an integer factor (so its size is the box's divided by that factor,
        rounded up).

    Raises
    ------
    InvalidCrop
        If a box is not a non-empty rectangle inside the image (``size`` set).
    TooManyPixels, UnreadableImage
        As for :func:`open_image`.
    """
    parts = list(parts)
    if turn not in TURN_DEGREES:
        raise ValueError(f"turn must be one of {TURN_DEGREES}, not {turn!r}.")
    if isinstance(fp, (bytes, bytearray, memoryview)):
        fp = io.BytesIO(bytes(fp))
    try:
        with warnings.catch_warnings():
            # Pillow warns of a large image on opening; the caller's ``max_pixels`` decides,
            # below, with a message of its own (and Pillow still raises past twice its limit).
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(fp)
        with im:
            # Only the first frame of animations: ``seek(0)`` is a no-op for stills.
            im.seek(0)
            full = im.size
            scale = _decoding_scale(im, parts, max_pixels)
            if scale > 1:
                wanted = (max(1, full[0] // scale), max(1, full[1] // scale))
                drafted = im.draft(None, wanted)
                scale = round(full[0] / drafted[1][2]) if drafted else 1
            im.load()
            if scale == 1:
                full = im.size  # a few formats only know their size once loaded
            orientation = _TURNED[_orientation(im), turn]
            size = full[::-1] if orientation in (5, 6, 7, 8) else full
            boxes = [(0, 0, *size) if box is None else check_box(box, size) for box, _ in parts]
            value_range = _float_range(im) if im.mode == "F" else None
            done, images = {}, []
            for box, (_box, side) in zip(boxes, parts, strict=True):
                if (box, side) not in done:
                    region = _decoded_region(_stored_box(box, orientation, full), scale, im.size)
                    done[box, side] = _extract(im, region, orientation, side, value_range)
                images.append(done[box, side])
            return size, images
    except (InvalidCrop, TooManyPixels):
        raise
    except Image.DecompressionBombError as exc:
        raise TooManyPixels(f"{_name(fp)} is a decompression bomb: {exc}") from exc
    except UnidentifiedImageError as exc:
        # Pillow's message names the file object ("<_io.BytesIO object at 0x7f...>").
        raise UnreadableImage(
            f"Cannot read {_name(fp)} as an image: not a format Pillow knows"
        ) from exc
    except (OSError, SyntaxError, EOFError, ValueError) as exc:
        # Pillow reports truncated or corrupt data with several exception types; callers
        # should only need to catch one.
        raise UnreadableImage(f"Cannot read {_name(fp)} as an image: {exc}") from exc


def _name(fp):
    return os.fspath(fp) if isinstance(fp, (str, os.PathLike)) else "image data"


def decode_cost(im: Image.Image, scale: int = 1) -> int:
    """Bytes of memory Pillow needs to decode ``im`` (opened, not loaded) at ``1/scale``.

    The decoded frame (four bytes a pixel for RGB, RGBA, 32-bit and float modes, fewer for
    grey and palette ones); for a progressive JPEG also libjpeg's buffer of every DCT
    coefficient of the image (two bytes each, not reduced by the scale: three bytes a pixel
    with 4:2:0 chroma, six without subsampling); for WebP the decoder's canvases. Only a JPEG
    can be decoded at a ``scale`` above 1.
    """
    width, height = im.size
    if im.format == "WEBP":
        return width * height * _WEBP_BYTES
    cost = -(-width // scale) * -(-height // scale) * _MODE_BYTES.get(im.mode, 4)
    if _is_jpeg(im) and im.info.get("progressive"):
        cost += _coefficient_bytes(im)
    return cost


def _is_jpeg(im):
    # MPO: a JPEG with the Multi-Picture extension, as many cameras and phones write.
    return im.format in ("JPEG", "MPO")


def _coefficient_bytes(im):
    width, height = im.size
    layers = [(int(h), int(v)) for _id, h, v, _q in getattr(im, "layer", ())] or [(1, 1)] * 3
    h_max, v_max = max(h for h, _ in layers), max(v for _, v in layers)
    blocks = sum(
        math.ceil(width * h / h_max / 8) * math.ceil(height * v / v_max / 8) for h, v in layers
    )
    return blocks * 64 * 2


def _decoding_scale(im, parts, max_pixels):
    """The JPEG scale (1, 2, 4 or 8) to decode at: the coarsest that still gives every part
    its ``min_side``, coarser if the budget of ``max_pixels`` needs it; ``TooManyPixels`` if
    even the coarsest does not fit. Always 1 for other formats."""
    width, height = im.size
    scales = (1, 2, 4, 8) if _is_jpeg(im) and len(im.tile) == 1 else (1,)
    wanted = 1
    for scale in scales:
        # A box's longer side does not depend on the orientation, unknown before loading.
        if all(
            side is not None and _longer(box, width, height) >= side * scale for box, side in parts
        ):
            wanted = scale
    if max_pixels is None:
        return wanted
    if width * height > max_pixels:
        raise TooManyPixels(
            f"The image is {width}×{height} pixels; at most {max_pixels} are accepted.",
            width=width,
            height=height,
            limit=max_pixels,
            format=im.format,
        )
    budget = max_pixels * BUDGET_BYTES_PER_PIXEL
    for scale in scales:
        if scale >= wanted and decode_cost(im, scale) <= budget:
            return scale
    cost = decode_cost(im, scales[-1])
    limit = int(width * height * budget / cost)
    raise TooManyPixels(
        f"Decoding this {width}×{height} {im.format} image would take {cost / 2**20:.0f} MB; "
        f"images of its kind are accepted up to {limit} pixels.",
        width=width,
        height=height,
        limit=limit,
        format=im.format,
        progressive=bool(im.info.get("progressive")),
    )


def _longer(box, width, height):
    if box is None:
        return max(width, height)
    try:
        x0, y0, x1, y1 = (int(v) for v in box)
    except (TypeError, ValueError):
        return max(width, height)  # refused by check_box once the image is loaded
    return max(1, x1 - x0, y1 - y0)


def _orientation(im):
    orientation = im.getexif().get(ExifTags.Base.Orientation, 1)
    return orientation if orientation in _TRANSPOSE else 1


def _stored_box(box, orientation, size):
    """``box`` of the upright image, in pixels of the image as stored (before its EXIF
    orientation is applied); ``size`` is the stored image's."""
    x0, y0, x1, y1 = box
    w, h = size
    return {
        1: (x0, y0, x1, y1),
        2: (w - x1, y0, w - x0, y1),
        3: (w - x1, h - y1, w - x0, h - y0),
        4: (x0, h - y1, x1, h - y0),
        5: (y0, x0, y1, x1),
        6: (y0, h - x1, y1, h - x0),
        7: (w - y1, h - x1, w - y0, h - x0),
        8: (w - y1, x0, w - y0, x1),
    }[orientation]


def _decoded_region(box, scale, decoded):
    """A full-size box in pixels of the image decoded at ``1/scale`` (of size ``decoded``),
    rounded outwards so that no selected pixel is lost."""
    x0, y0, x1, y1 = box
    return (
        x0 // scale,
        y0 // scale,
        min(decoded[0], max(x0 // scale + 1, -(-x1 // scale))),
        min(decoded[1], max(y0 // scale + 1, -(-y1 // scale))),
    )


def _extract(im, region, orientation, min_side, value_range=None):
    """``region`` of the decoded ``im`` as an upright RGB image, box-reduced by the largest
    integer factor that keeps its longer side at ``min_side`` or more.

    The region is converted to RGB in strips, each reduced before the next is converted, so
    only one strip is ever converted at full resolution; strips a multiple of the factor high
    make the result identical to reducing the whole region at once. The small result is
    then rotated upright.
    """
    left, top, right, bottom = region
    width, height = right - left, bottom - top
    factor = max(1, max(width, height) // min_side) if min_side else 1
    rows = max(factor, _STRIP_PIXELS // width // factor * factor)
    out = Image.new("RGB", (-(-width // factor), -(-height // factor)))
    for y in range(top, bottom, rows):
        strip = _to_rgb(im.crop((left, y, right, min(y + rows, bottom))), value_range)
        if factor > 1:
            strip = strip.reduce(factor)
        out.paste(strip, (0, (y - top) // factor))
        del strip
    if orientation in _TRANSPOSE:
        out = out.transpose(_TRANSPOSE[orientation])
    return out


def _to_rgb(im: Image.Image, value_range=None) -> Image.Image:
    """Convert a strip in any Pillow mode to RGB, compositing transparency on
    :data:`BACKGROUND`; ``value_range`` is the whole image's ``(min, max)`` for mode F."""
    if im.mode == "P":
        # Palette images may carry transparency as a palette index or a bytes table.
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif im.mode in _WIDE_GREY:
        # 16/32-bit greyscale: ``convert("L")`` clips instead of scaling, so scale by hand.
        im = _scale_wide_grey(im)
    elif im.mode == "F":
        im = _scale_float_grey(im, value_range)
    elif im.mode in ("L", "1") and "transparency" in im.info:
        im = im.convert("LA")

    if im.mode in _ALPHA:
        rgba = im.convert("RGBA")
        background = Image.new("RGB", rgba.size, BACKGROUND)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if im.mode == "RGB":
        return im  # a strip is already a copy
    # L, 1, CMYK, YCbCr, LAB, HSV, RGBX...: Pillow's conversions are correct for these.
    return im.convert("RGB")


def _scale_wide_grey(im: Image.Image) -> Image.Image:
    """Map a strip of 16-bit (PNG ``I;16``) or 32-bit integer grey onto 8 bits: the full
    range is 65535. float32 is exact enough on a strip; float64 copies of a whole 40 MP
    image were what made a flat 16-bit PNG cost 1.4 GB."""
    import numpy as np

    a = np.asarray(im).astype(np.float32)
    a *= 1 / 257
    return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8))


def _float_range(im):
    """Smallest and largest finite value of a mode F image, read strip by strip."""
    import numpy as np

    lo, hi = math.inf, -math.inf
    rows = max(1, _STRIP_PIXELS // im.width)
    for y in range(0, im.height, rows):
        a = np.asarray(im.crop((0, y, im.width, min(y + rows, im.height))))
        finite = a[np.isfinite(a)]
        if finite.size:
            lo, hi = min(lo, float(finite.min())), max(hi, float(finite.max()))
    return lo, hi


def _scale_float_grey(im: Image.Image, value_range) -> Image.Image:
    """Stretch a strip of float grey from the whole image's finite range onto 8 bits (NaN
    black, infinities clipped)."""
    import numpy as np

    lo, hi = value_range
    a = np.asarray(im).astype(np.float32)
    if hi > lo:
        a = (a - np.float32(lo)) * np.float32(255.0 / (hi - lo))
    else:
        a = np.zeros_like(a)
    a = np.nan_to_num(a, nan=0.0, posinf=255.0, neginf=0.0)
    return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8))


def check_box(box, size) -> tuple[int, int, int, int]:
    """``box`` as four ints if it is a non-empty rectangle inside an image of ``size``.

    Pillow accepts boxes outside the image (padding with black) and inverted boxes, which
    would make a shopper's selection produce a nonsensical query, so the box is checked.

    Parameters
    ----------
    box : sequence of 4 ints
        ``(x0, y0, x1, y1)`` in pixels, with ``0 <= x0 < x1 <= width`` and
        ``0 <= y0 < y1 <= height``; ``x1``/``y1`` are exclusive, as in Pillow.
    size : tuple of int
        ``(width, height)``.

    Raises
    ------
    InvalidCrop
        If the box is malformed or not a non-empty rectangle inside the image.
    """
    try:
        values = list(box)
    except TypeError:
        raise InvalidCrop(
            f"Crop box must be a sequence (x0, y0, x1, y1), got {box!r}.", size
        ) from None
    if len(values) != 4:
        raise InvalidCrop(f"Crop box must have 4 values (x0, y0, x1, y1), got {len(values)}.", size)
    for v in values:
        # bool is an int subclass but never a meaningful coordinate.
        if isinstance(v, bool) or not isinstance(v, int):
            try:
                import numpy as np

                ok = isinstance(v, np.integer)
            except ImportError:  # pragma: no cover
                ok = False
            if not ok:
                raise InvalidCrop(f"Crop box values must be integers, got {box!r}.", size)
    x0, y0, x1, y1 = (int(v) for v in values)
    width, height = size
    if not (0 <= x0 < x1 <= width):
        raise InvalidCrop(
            f"Crop box x-range must satisfy 0 <= x0 < x1 <= {width} (image width), "
            f"got x0={x0}, x1={x1}.",
            size,
        )
    if not (0 <= y0 < y1 <= height):
        raise InvalidCrop(
            f"Crop box y-range must satisfy 0 <= y0 < y1 <= {height} (image height), "
            f"got y0={y0}, y1={y1}.",
            size,
        )
    return x0, y0, x1, y1


def crop(image: Image.Image, box) -> Image.Image:
    """Crop ``image`` to ``box``, refusing boxes that Pillow would silently pad or flip.

    Parameters
    ----------
    image : PIL.Image.Image
    box : sequence of 4 ints
        As :func:`check_box` takes it.

    Raises
    ------
    InvalidCrop
        If the box is malformed or not a non-empty rectangle inside the image.
    """
    return image.crop(check_box(box, image.size))
