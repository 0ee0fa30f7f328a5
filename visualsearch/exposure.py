"""Photos taken in dim light, brought back to a catalogue photo's range of levels before
they are searched.

A shopper's photo in a dim room is dark, flat and noisy, and the encoder's features move
with exposure: such photos found their product in the top 10 far less often than well-lit
ones (robust hit@10 0.67-0.71 for the ``low_light`` kind of :mod:`visualsearch.distortions`
against 0.93-0.96 for the ``standard`` kind). Catalogue photos span the whole range. A photo
whose brightest pixels (the 99th percentile of its luminance) stay below
``VISUALSEARCH_DIM_PHOTO_LEVEL`` has its levels stretched so that its 1st and 99th
percentiles become black and white: the classic "auto levels".

Only dim photos are stretched. Stretching every photo brought low-light photos to 0.78 but
cost the others hits (products small on a textured surface 0.653 -> 0.553, beside another
product 0.670 -> 0.607): the stretch changes their contrast against the surface, which
localisation and the encoder's foreground crop rely on. Colour casts are left as they are:
a grey-world white balance cost hits on every kind measured. The catalogue's own photos
are never changed, so the stored vectors do not depend on this.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .conf import app_settings

__all__ = ["brighten_dim"]

#: Percentiles of luminance that become black and white.
LOW, HIGH = 1, 99
#: A photo whose percentiles are closer than this (out of 255) is flat, not dim: a blank or
#: nearly uniform picture is left alone rather than stretched into noise.
MIN_RANGE = 8.0
#: The percentiles are read from about this many pixels a side (a strided sample: every
#: pixel of a 12-megapixel photo would cost tens of milliseconds and change nothing).
SAMPLE_SIDE = 128


def brighten_dim(image: Image.Image, level: float | None = None) -> Image.Image:
    """``image`` with its levels stretched if it was taken in dim light, else itself.

    Parameters
    ----------
    image : PIL.Image.Image
    level : float, optional
        Luminance (0-255) that a photo's 99th percentile must reach to count as lit;
        ``VISUALSEARCH_DIM_PHOTO_LEVEL`` by default, where ``None`` switches this off.

    Returns
    -------
    PIL.Image.Image
        RGB when stretched.
    """
    level = app_settings.DIM_PHOTO_LEVEL if level is None else level
    if level is None:
        return image
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    pixels = np.asarray(rgb)
    step = max(1, max(pixels.shape[:2]) // SAMPLE_SIDE)
    luminance = pixels[::step, ::step].mean(axis=2, dtype=np.float32)
    low, high = np.percentile(luminance, (LOW, HIGH))
    if high >= float(level) or high - low <= MIN_RANGE:
        return image
    stretched = (pixels.astype(np.float32) - low) * (255.0 / (high - low))
    return Image.fromarray(np.clip(stretched, 0, 255).astype(np.uint8), "RGB")
