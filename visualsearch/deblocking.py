"""Photos saved as heavily compressed JPEGs, smoothed before they are searched.

A photo sent through a messaging app, or saved at a low quality to fit an upload limit,
arrives as a mosaic of 8 x 8 blocks whose edges the encoder reads as texture: such photos
found their product in the top 10 far less often than others (robust hit@10 0.767 for the
``heavy_jpeg`` kind of :mod:`visualsearch.distortions`, against 0.957 for the ``standard``
kind). A photo whose luminance jumps across the block grid clearly more than inside the
blocks (:func:`blockiness` at least ``VISUALSEARCH_BLOCKY_PHOTO_RATIO``) gets a light
Gaussian blur (radius 0.7 pixel), which washes the block edges out and keeps the garment's
shape.

Measured with ``evaluate_visual`` (300 photos a kind, the heavy JPEG and standard kinds of
one draw, the grid's phase taken as fixed): a radius of 0.7 did best among 0.5, 0.7, 1.0,
1.2 and 1.5 and halving and restoring the size (heavy JPEG 0.770, 0.810, 0.797, 0.783,
0.717 and 0.793 against 0.757 untouched, at a ratio of 1.9). A ratio of 2.2 did as well as
1.9 (heavy JPEG 0.823 against 0.810; standard 0.943, as untouched, against 0.947) and
smooths fewer photos of the other kinds; 1.5 and 1.6 did less well. At 2.2, about three in
four heavy JPEG photos are smoothed, and more than half of the standard kind's, which are
JPEGs too, at a lighter quality; a fifth of the textured kind's, few of the others.

The grid is found whatever its phase (a photo cropped or turned after compression moves
it), but not at another period: a photo enlarged or shrunk after it was compressed is left
as it is. The catalogue's photos are never changed, so the stored vectors do not depend on
this.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from .conf import app_settings

__all__ = ["blockiness", "smooth_blocky"]

#: The JPEG block side, in pixels.
BLOCK = 8
#: The blur that washes block edges out (pixels).
RADIUS = 0.7
#: :func:`blockiness` reads at most this many pixels a side, from the photo's centre, in
#: whole blocks (so the grid keeps its phase): a 12-megapixel photo read whole would cost
#: tens of milliseconds and say the same.
WINDOW = 512


def _phase_ratio(steps: np.ndarray) -> float:
    """How much larger the mean jump is at the strongest of the 8 phases than at the others;
    ``steps`` holds the mean absolute step between neighbouring columns (or rows)."""
    n = len(steps) // BLOCK * BLOCK
    if n < 4 * BLOCK:
        return 1.0
    phases = steps[:n].reshape(-1, BLOCK).mean(axis=0)
    strongest = int(np.argmax(phases))
    others = np.delete(phases, strongest).mean()
    return float(phases[strongest] / max(others, 1e-3))


def blockiness(image: Image.Image) -> float:
    """The ratio of the luminance's jumps across the block grid to its jumps inside the
    blocks: about 1 for a photo, above 2 for a heavily compressed JPEG."""
    width, height = image.size
    left = max(0, (width - WINDOW) // 2) // BLOCK * BLOCK
    top = max(0, (height - WINDOW) // 2) // BLOCK * BLOCK
    window = image.crop((left, top, min(width, left + WINDOW), min(height, top + WINDOW)))
    pixels = np.asarray(window.convert("L"), dtype=np.float32)
    across = np.abs(np.diff(pixels, axis=1)).mean(axis=0)
    down = np.abs(np.diff(pixels, axis=0)).mean(axis=1)
    return (_phase_ratio(across) + _phase_ratio(down)) / 2


def smooth_blocky(image: Image.Image, ratio: float | None = None) -> Image.Image:
    """``image`` lightly blurred if it is a heavily compressed JPEG, else itself.

    Parameters
    ----------
    image : PIL.Image.Image
    ratio : float, optional
        The :func:`blockiness` from which a photo counts as blocky;
        ``VISUALSEARCH_BLOCKY_PHOTO_RATIO`` by default, where ``None`` switches this off.

    Returns
    -------
    PIL.Image.Image
        RGB when smoothed, the same size.
    """
    ratio = app_settings.BLOCKY_PHOTO_RATIO if ratio is None else ratio
    if ratio is None or blockiness(image) < float(ratio):
        return image
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    return rgb.filter(ImageFilter.GaussianBlur(RADIUS))
