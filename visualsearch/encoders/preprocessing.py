"""Image preprocessing shared by the encoders: framing on the product, and batching.

A shopper's photo frames the product differently from the catalogue photo: more backdrop
around it, a table or bed on some sides, a tilt that adds wedges of backdrop. Cropping both the
catalogue photo and the query photo to the product, the same way, cancels most of that before
the network sees either. :func:`crop_to_foreground` peels off the outer rows and columns that
are of one colour (a backdrop, a surface, a border) until it reaches a line that is not, so it
needs no segmentation model and works on any plain or uniformly coloured background; a photo
with a busy background simply keeps its frame.

:func:`to_batch` turns the framed images into the network's float32 NCHW input with one
vectorised pass: the per-pixel normalisation of a batch of 224x224 images cost ten times more
in the obvious ``astype``/subtract/divide/transpose chain than as a single fused multiply-add.

Pure numpy and Pillow: importing this module imports no model.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

__all__ = ["crop_to_foreground", "foreground_box", "to_batch"]

#: Side, in pixels, of the thumbnail on which the frame is analysed: the decision needs no
#: detail, and a small image keeps it cheap for multi-megapixel uploads.
WORK_SIZE = 64
#: A line is backdrop when at least this fraction of its pixels are within ``TOLERANCE`` of
#: its median colour (JPEG noise and the odd speck do not stop the peeling).
UNIFORM_FRACTION = 0.9
#: Largest per-channel difference, in 0-255 levels, still counted as the same colour; JPEG at
#: quality 30 moves flat colours by up to ~35 levels on the image's edge.
TOLERANCE = 40
#: Widest seam, in thumbnail lines, between a surface and the product's backdrop (blurred by
#: resampling and JPEG) that peeling crosses; a product is far wider than this.
SEAM_WIDTH = 3
#: Backdrop left around the product on each side, relative to its longer side.
MARGIN = 0.06


def _line(a, box, side, inset=0):
    top, bottom, left, right = box
    if side == 0:
        return a[top + inset, left:right]
    if side == 1:
        return a[bottom - 1 - inset, left:right]
    if side == 2:
        return a[top:bottom, left + inset]
    return a[top:bottom, right - 1 - inset]


def _peel(a: np.ndarray, tolerance: int, fraction: float):
    """Peel backdrop lines off ``a`` (h, w, 3 int16) from the four sides in turn until none
    is left; returns ``(top, bottom, left, right)`` and the colour of the last flat line
    peeled (``None`` if none was).

    A line is backdrop when it is of one colour (within ``tolerance``, JPEG noise) and that
    colour continues the backdrop: the first line of a side, or a line like one peeled
    before. A line of a new colour is peeled only when it, or one of the few lines inside
    it, is strictly flat (within half the tolerance): a surface's edge blurred into the
    product's own backdrop is crossed, but the inside of a plain, textured product, reached
    once the box is tight on the other axis, is not peeled away.
    """

    def median_of(line, tol):
        # np.median's own machinery cost four times the sort on these short lines, and
        # a photo has dozens of them peeled.
        ordered = np.sort(line, axis=0)
        n = len(ordered)
        median = (ordered[(n - 1) // 2].astype(np.float64) + ordered[n // 2]) / 2.0
        return (np.abs(line - median).max(axis=1) <= tol).mean() >= fraction, median

    def flat(line):
        return median_of(line, tolerance / 2)[0]

    box = [0, a.shape[0], 0, a.shape[1]]
    last = [None] * 4  # colour of the last line peeled on each side
    seen = []  # colours of every line peeled
    colour = None
    changed = True
    while changed:
        changed = False
        for side in range(4):
            while box[1] - box[0] > 2 and box[3] - box[2] > 2:
                line = _line(a, box, side)
                ok, median = median_of(line, tolerance)
                if not ok:
                    break
                continues = last[side] is None or any(
                    np.abs(median - c).max() <= tolerance for c in seen
                )
                if not continues:
                    depth = box[1] - box[0] if side < 2 else box[3] - box[2]
                    inner = range(0, min(SEAM_WIDTH, depth - 2) + 1)
                    if not any(flat(_line(a, box, side, inset)) for inset in inner):
                        break
                last[side] = median
                seen.append(median)
                if colour is None or flat(line):
                    colour = median  # not a blurred seam's colour
                changed = True
                if side == 0:
                    box[0] += 1
                elif side == 1:
                    box[1] -= 1
                elif side == 2:
                    box[2] += 1
                else:
                    box[3] -= 1
    return tuple(box), colour


def foreground_box(image: Image.Image, *, tolerance=TOLERANCE, fraction=UNIFORM_FRACTION):
    """The box around the product and the colour of the backdrop around it.

    Parameters
    ----------
    image : PIL.Image.Image
        RGB.

    Returns
    -------
    box : tuple of int
        ``(left, upper, right, lower)`` in ``image``'s pixels, as :meth:`PIL.Image.Image.crop`
        takes it; the whole image when no backdrop was found.
    background : tuple of int or None
        RGB colour of the innermost backdrop peeled off; ``None`` when nothing was.
    """
    w, h = image.size
    scale = min(1.0, WORK_SIZE / max(w, h))
    small = image
    if scale < 1.0:
        small = image.resize(
            (max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BOX
        )
    a = np.asarray(small, dtype=np.int16)
    if a.ndim != 3 or min(a.shape[:2]) < 3:
        return (0, 0, w, h), None
    (top, bottom, left, right), colour = _peel(a, tolerance, fraction)
    if colour is None or min(bottom - top, right - left) <= 2:
        # Nothing peeled, or nothing but backdrop (a blank image): keep the whole frame.
        return (0, 0, w, h), None
    sx, sy = w / small.width, h / small.height
    box = (
        int(left * sx),
        int(top * sy),
        min(w, int(np.ceil(right * sx))),
        min(h, int(np.ceil(bottom * sy))),
    )
    return box, tuple(int(c) for c in np.clip(np.rint(colour), 0, 255))


def crop_to_foreground(image: Image.Image, margin: float = MARGIN) -> Image.Image:
    """Crop ``image`` to the product and centre it on a square of its own backdrop colour.

    Squaring keeps the product's aspect ratio when the encoder resizes to its square input
    (a tilted photo's box is wider than the upright catalogue photo's; stretching both to a
    square would distort them differently). An image of one colour, or one whose product
    touches every edge, comes back unchanged.

    Parameters
    ----------
    image : PIL.Image.Image
        Any mode; converted to RGB.
    margin : float
        Backdrop added on each side, relative to the product's longer side.

    Returns
    -------
    PIL.Image.Image
        RGB.
    """
    if image.mode != "RGB":
        image = image.convert("RGB")
    box, background = foreground_box(image)
    if background is None:
        return image
    product = image.crop(box)
    w, h = product.size
    side = max(1, round(max(w, h) * (1 + 2 * margin)))
    canvas = Image.new("RGB", (side, side), background)
    canvas.paste(product, ((side - w) // 2, (side - h) // 2))
    return canvas


def to_batch(images, size: int, mean, std) -> np.ndarray:
    """Resize RGB images to ``size`` square and normalise them into one NCHW batch.

    Parameters
    ----------
    images : list of PIL.Image.Image
        RGB.
    size : int
        Side of the network input.
    mean, std : sequence of 3 floats
        Per-channel normalisation of pixels scaled to [0, 1].

    Returns
    -------
    ndarray of float32, shape (len(images), 3, size, size)
        ``(pixel / 255 - mean) / std``.
    """
    pixels = np.empty((len(images), size, size, 3), dtype=np.uint8)
    for i, im in enumerate(images):
        if im.size != (size, size):
            # reducing_gap: large photos are first box-reduced by an integer factor, which is
            # several times faster than a full bicubic filter and indistinguishable after it.
            im = im.resize((size, size), Image.Resampling.BICUBIC, reducing_gap=3.0)
        pixels[i] = np.asarray(im)
    scale = 1.0 / (255.0 * np.asarray(std, dtype=np.float32))
    offset = -np.asarray(mean, dtype=np.float32) / np.asarray(std, dtype=np.float32)
    batch = np.empty((len(images), 3, size, size), dtype=np.float32)
    # One multiply straight from the uint8 NHWC view into the float NCHW output, then one add.
    np.multiply(pixels.transpose(0, 3, 1, 2), scale[:, None, None], out=batch, casting="unsafe")
    batch += offset[:, None, None]
    return batch
