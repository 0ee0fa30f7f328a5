"""Enlarged thumbnails, made smooth again before they are searched.

A shopper who saves a product's small picture and enlarges it in an editor or a chat app
that repeats each pixel (nearest-neighbour scaling) sends a mosaic of flat squares. The
encoder reads the squares' edges as texture: of 40 demo products whose own 28-pixel photo
was sent enlarged this way to 224 pixels, the product came first for 11 (0.275) and in the
top 10 for 27, against 39 first and all 40 in the top 10 for the same photos enlarged
smoothly (bicubic).

:func:`smooth_pixelated` finds such a photo by its runs of identical columns and rows: the
spacing of the places where the picture changes gives the size of a square, the small
picture is read back from the squares' centres, and the photo is accepted as an
enlargement only if repeating that small picture's pixels gives the photo again (so a
photo with flat areas, a drawing with sharp edges or a shot of a plain wall is never taken
for one). The small picture is then enlarged smoothly to the photo's size, so that regions
found in it keep their coordinates. The catalogue's photos are never changed.

How strict the two tests are (:data:`STEP`, :data:`LARGEST_MISMATCH`) was set on 20 demo
photos enlarged to 224, 300, 500 and 700 pixels and saved as PNG and as JPEG (quality 90
and 75), against 280 shopper photos of the seven kinds of :mod:`visualsearch.distortions`:
at these values 223 of the 240 enlargements are found and none of the shopper photos is
taken for one (a step of 0 and a mismatch of 1 found only the 120 whose squares a JPEG's
blocks did not blur; 48 and 8 found all 240 but took a heavily compressed photo for one).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

__all__ = ["pixel_size", "smooth_pixelated"]

#: The smallest square side taken for an enlargement (a side of 1 is every photo).
SMALLEST_SQUARE = 2
#: The fewest changes along a side: fewer say too little about the spacing (a flat picture).
FEWEST_CHANGES = 6
#: A change between neighbouring columns (or rows): a step of more than this many grey
#: levels somewhere along them. Smaller steps are the noise a JPEG saved enlargement
#: carries inside its squares.
STEP = 40
#: How far, in grey levels on average, the photo may be from its small picture's pixels
#: repeated (a lossless enlargement gives 0; a JPEG of one a few levels).
LARGEST_MISMATCH = 6.0


def _square_side(changes: np.ndarray) -> float | None:
    """The spacing of the changes along one side (indices of the pairs of neighbouring
    columns, or rows, that differ), or ``None`` if they are not those of repeated pixels:
    next to each other anywhere, or too few."""
    if len(changes) < FEWEST_CHANGES:
        return None
    gaps = np.diff(changes)
    smallest = int(gaps.min())
    if smallest < SMALLEST_SQUARE:
        return None
    # Two neighbouring pixels of the small picture that are alike leave a gap of two
    # squares; the single squares (of two sides a pixel apart, when the enlargement was
    # not by a whole number) give the side, on average.
    return float(gaps[gaps < 1.5 * smallest + 1].mean())


def pixel_size(image: Image.Image) -> tuple[int, int] | None:
    """The size of the small picture ``image`` was enlarged from by repeating its pixels,
    or ``None`` if it was not."""
    grey = np.asarray(image.convert("L"), dtype=np.int16)
    across = np.flatnonzero(np.abs(np.diff(grey, axis=1)).max(axis=0) > STEP)
    down = np.flatnonzero(np.abs(np.diff(grey, axis=0)).max(axis=1) > STEP)
    side_x, side_y = _square_side(across), _square_side(down)
    if side_x is None or side_y is None:
        return None
    width, height = image.size
    return max(1, round(width / side_x)), max(1, round(height / side_y))


def smooth_pixelated(image: Image.Image) -> Image.Image:
    """``image`` enlarged smoothly from the small picture it repeats the pixels of, at its
    own size; else ``image`` itself."""
    size = pixel_size(image)
    if size is None:
        return image
    small = image.resize(size, Image.Resampling.NEAREST)  # the squares' centres
    again = np.asarray(small.resize(image.size, Image.Resampling.NEAREST), dtype=np.int16)
    if np.abs(again - np.asarray(image, dtype=np.int16)).mean() > LARGEST_MISMATCH:
        return image
    return small.resize(image.size, Image.Resampling.BICUBIC)
