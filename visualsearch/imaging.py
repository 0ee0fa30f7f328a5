"""Robust image decoding for visual search.

Shoppers upload whatever their phone or browser produced: rotated JPEGs that rely on EXIF
orientation, transparent PNGs, palette GIFs, CMYK JPEGs from print workflows, 16-bit PNGs,
animated WebPs. Encoders expect an upright RGB image, so every image entering the visual-search
pipeline (catalogue indexing and query uploads alike) goes through :func:`open_image`; treating
both sides identically is what keeps their embeddings comparable.

Size limits and decompression-bomb checks belong to upload validation, not here.
"""

from __future__ import annotations

import io
import os

from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["InvalidCrop", "UnreadableImage", "crop", "open_image"]

#: Transparent pixels are composited on white: product shots are conventionally on white, and
#: black (what a plain ``convert("RGB")`` gives) would make cut-out products look dark.
BACKGROUND = (255, 255, 255)


class UnreadableImage(ValueError):
    """The data is not an image Pillow can decode (truncated, corrupt or not an image)."""


class InvalidCrop(ValueError):
    """A crop box does not describe a non-empty rectangle inside the image."""


def open_image(fp) -> Image.Image:
    """Decode an image file into an upright, fully loaded RGB image.

    Parameters
    ----------
    fp : str, os.PathLike, bytes or file-like object
        The encoded image. File objects are read from their current position; Django's
        ``UploadedFile`` and ``FieldFile`` work as they are.

    Returns
    -------
    PIL.Image.Image
        Mode ``"RGB"``, with EXIF orientation applied, transparency flattened on white and,
        for animations, only the first frame. The pixels are loaded, so the caller may close
        the source file.

    Raises
    ------
    UnreadableImage
        If the data cannot be decoded.
    """
    if isinstance(fp, (bytes, bytearray, memoryview)):
        fp = io.BytesIO(bytes(fp))
    try:
        with Image.open(fp) as im:
            # Only the first frame of animations: ``seek(0)`` is a no-op for stills.
            im.seek(0)
            im.load()
            # Transpose before any conversion: exif_transpose needs the original EXIF.
            im = ImageOps.exif_transpose(im)
            return _to_rgb(im)
    except (UnidentifiedImageError, OSError, SyntaxError, EOFError, ValueError) as exc:
        # Pillow reports truncated or corrupt data with several exception types; callers
        # should only need to catch one.
        name = os.fspath(fp) if isinstance(fp, (str, os.PathLike)) else "image data"
        raise UnreadableImage(f"Cannot read {name} as an image: {exc}") from exc


def _to_rgb(im: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB, compositing transparency on :data:`BACKGROUND`."""
    if im.mode == "P":
        # Palette images may carry transparency as a palette index or a bytes table.
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # 16/32-bit greyscale: ``convert("L")`` clips instead of scaling, so scale by hand.
        im = _scale_wide_grey(im)
    elif im.mode == "F":
        im = _scale_wide_grey(im)
    elif im.mode in ("L", "1") and "transparency" in im.info:
        im = im.convert("LA")

    if im.mode in ("RGBA", "LA", "RGBa", "La", "PA"):
        rgba = im.convert("RGBA")
        background = Image.new("RGB", rgba.size, BACKGROUND)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if im.mode == "RGB":
        # Always a new image: the caller's ``with Image.open()`` closes the original.
        return im.copy()
    # L, 1, CMYK, YCbCr, LAB, HSV, RGBX...: Pillow's conversions are correct for these.
    return im.convert("RGB")


def _scale_wide_grey(im: Image.Image) -> Image.Image:
    """Map a 16-bit, 32-bit integer or float greyscale image onto 8 bits."""
    import numpy as np

    a = np.asarray(im, dtype=np.float64)
    if im.mode == "F":
        lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
        scaled = (a - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(a)
    else:
        # 16-bit data (PNG I;16 is opened as mode "I" by modern Pillow): full range is 65535.
        scaled = a / 257.0
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L")


def crop(image: Image.Image, box) -> Image.Image:
    """Crop ``image`` to ``box``, refusing boxes that Pillow would silently pad or flip.

    Pillow accepts boxes outside the image (padding with black) and inverted boxes, which
    would make a shopper's selection produce a nonsensical query, so the box is checked.

    Parameters
    ----------
    image : PIL.Image.Image
    box : sequence of 4 ints
        ``(x0, y0, x1, y1)`` in pixels, with ``0 <= x0 < x1 <= width`` and
        ``0 <= y0 < y1 <= height``; ``x1``/``y1`` are exclusive, as in Pillow.

    Raises
    ------
    InvalidCrop
        If the box is malformed or not a non-empty rectangle inside the image.
    """
    try:
        values = list(box)
    except TypeError:
        raise InvalidCrop(f"Crop box must be a sequence (x0, y0, x1, y1), got {box!r}.") from None
    if len(values) != 4:
        raise InvalidCrop(f"Crop box must have 4 values (x0, y0, x1, y1), got {len(values)}.")
    for v in values:
        # bool is an int subclass but never a meaningful coordinate.
        if isinstance(v, bool) or not isinstance(v, int):
            try:
                import numpy as np

                ok = isinstance(v, np.integer)
            except ImportError:  # pragma: no cover
                ok = False
            if not ok:
                raise InvalidCrop(f"Crop box values must be integers, got {box!r}.")
    x0, y0, x1, y1 = (int(v) for v in values)
    width, height = image.size
    if not (0 <= x0 < x1 <= width):
        raise InvalidCrop(
            f"Crop box x-range must satisfy 0 <= x0 < x1 <= {width} (image width), "
            f"got x0={x0}, x1={x1}."
        )
    if not (0 <= y0 < y1 <= height):
        raise InvalidCrop(
            f"Crop box y-range must satisfy 0 <= y0 < y1 <= {height} (image height), "
            f"got y0={y0}, y1={y1}."
        )
    return image.crop((x0, y0, x1, y1))
