"""Where the products are in a shopper's photo, without a detection model.

A shopper photographs a product where it lies: small on a patterned sofa, beside another
product, half under a hand. Searched whole, such a photo is mostly sofa, and the encoder's
foreground crop (:func:`visualsearch.encoders.preprocessing.foreground_box`) only helps on a
plain backdrop. No detection weights can be downloaded, so the products are found from the
image itself: what lines the photo's edges is surface, and a product is a patch that looks
like none of it.

:func:`find_regions` works on a small copy of the photo. Each pixel gets a description of
its colour at two scales and of how busy its neighbourhood is (local contrast), so that a
striped or flowered surface is described by its stripes' colours *and* by its busyness, and
a smooth product on it stands out even where it shares a colour with a stripe. The pixels of
a band along the four edges are clustered (k-means) into a handful of surface prototypes; a
pixel far from every prototype (farther than nearly all the band's own pixels are) is
foreground. The foreground, cleaned by morphology, falls into connected patches; each
patch large enough is a candidate region, with a margin, and overlapping candidates are
merged; one with a side shorter than :data:`MIN_SIDE` pixels of the photo is too small to
search. A photo whose product fills the frame has no region smaller than the photo, and one
on a plain backdrop a single region that the encoder's own crop already frames
(:func:`redundant`): photo search then searches the photo alone, as it always did.

Pure numpy, scipy and Pillow; every choice is deterministic (the k-means starts from
evenly spaced band pixels), so a photo always gives the same regions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

__all__ = ["Region", "find_regions", "grow", "iou", "redundant", "views_of"]

#: Longer side, in pixels, of the copy the regions are found on: a product a shopper wants
#: found covers more than a few of its pixels, and the search must stay fast.
WORK_SIZE = 96
#: Width of the band along the edges taken as surface, relative to the shorter side.
BAND = 0.07
#: Surface prototypes clustered from the band: a flowered duvet has a base, petals, hearts
#: and leaves, and the k-means needs a few more to spare for the soft edges between them.
PROTOTYPES = 8
#: A pixel is foreground when it is farther from every prototype than this multiple of the
#: band's 95th-percentile distance (some band pixels are product when it nears an edge).
THRESHOLD = 1.6
#: Smallest foreground distance counted at all, on 0-1 colour channels: a photo of one flat
#: colour has no spread to measure against.
MIN_DISTANCE = 0.08
#: Smallest patch kept as a region, relative to the photo's area.
MIN_AREA = 0.012
#: Margin added around each patch, relative to its longer side: the product's outline,
#: which the morphology trims, and some of the surface around it, which the encoder needs
#: to see where the product ends. On the demo (``evaluate_visual``, 300 photos a kind, the
#: projection as it was), 0.03 against 0.2: small on a textured surface 0.643 -> 0.787,
#: beside another product 0.670 -> 0.803; 0.15 and 0.25 gave the same within the draws'
#: noise, 0.1 half the gain (docs/figures.md has the sweep, a second draw and the figures
#: after the refit).
MARGIN = 0.2
#: How far, in pixels of the small copy, the wide description's blur spreads a product's
#: patch beyond its outline; taken back off each box before the margin is added.
BLUR_REACH = 2
#: Overlap, relative to the smaller box, above which two candidates are one region.
MERGE_OVERLAP = 0.4
#: A region whose box (its margin included) covers more of the photo than this is the
#: photo itself.
MAX_SHARE = 0.8
#: Shortest side, in the photo's own pixels, of a region worth searching. The encoder sees
#: every view enlarged to 224 px, and a crop with a shorter side is mostly blur by then: on
#: the demo's 28-pixel test photos, where localisation split products into such fragments,
#: category precision@10 was 0.8495 with them and 0.864 searched whole. A shopper's photo
#: of a few hundred pixels or more keeps every region it has.
MIN_SIDE = 32
#: Most regions returned, largest first.
MAX_REGIONS = 3


@dataclass(frozen=True)
class Region:
    """A candidate product in a photo.

    Attributes
    ----------
    box : tuple of int
        The part of the photo searched for it: ``(x0, y0, x1, y1)`` in pixels of the photo
        given, right and bottom exclusive, with :data:`MARGIN` of surface around it.
    contrast : float
        How far, on average, the patch's pixels lie from the surface, in units of the
        threshold (above 1); a clear product scores higher than a shadow.
    """

    box: tuple
    contrast: float

    @property
    def area(self) -> int:
        x0, y0, x1, y1 = self.box
        return (x1 - x0) * (y1 - y0)


def _features(a):
    """Per-pixel description ``(h, w, 7)``: colour lightly blurred, colour averaged over a
    wider neighbourhood (a pattern's mix), and local contrast of the lightness."""
    from scipy import ndimage

    fine = np.stack([ndimage.gaussian_filter(a[..., c], 1.0) for c in range(3)], axis=-1)
    wide = np.stack([ndimage.gaussian_filter(a[..., c], 2.0) for c in range(3)], axis=-1)
    lum = a.mean(axis=2)
    mean = ndimage.gaussian_filter(lum, 1.5)
    busy = np.sqrt(np.clip(ndimage.gaussian_filter(lum * lum, 1.5) - mean * mean, 0, None))
    return np.concatenate([fine, wide, 2.0 * busy[..., None]], axis=-1)


def _band(h, w):
    b = max(2, round(BAND * min(h, w)))
    band = np.zeros((h, w), dtype=bool)
    band[:b], band[-b:], band[:, :b], band[:, -b:] = True, True, True, True
    return band


def _prototypes(samples, k=PROTOTYPES, iterations=8):
    """k-means of the band's pixels, started from evenly spaced samples (deterministic)."""
    k = min(k, len(samples))
    centres = samples[np.linspace(0, len(samples) - 1, k).astype(int)].copy()
    for _ in range(iterations):
        nearest = _distances(samples, centres).argmin(axis=1)
        for j in range(k):
            members = samples[nearest == j]
            if len(members):
                centres[j] = members.mean(axis=0)
    return centres


def _distances(x, centres):
    d = (x * x).sum(1)[:, None] - 2 * x @ centres.T + (centres * centres).sum(1)[None, :]
    return np.sqrt(np.clip(d, 0, None))


def _foreground(a):
    """The foreground mask and each pixel's distance in threshold units."""
    from scipy import ndimage

    h, w = a.shape[:2]
    feats = _features(a).reshape(h * w, -1)
    band = _band(h, w).ravel()
    centres = _prototypes(feats[band])
    distance = _distances(feats, centres).min(axis=1)
    threshold = max(MIN_DISTANCE, THRESHOLD * float(np.quantile(distance[band], 0.95)))
    score = (distance / threshold).reshape(h, w)
    mask = ndimage.binary_opening(score > 1.0, iterations=1)
    mask = ndimage.binary_closing(mask, iterations=2)
    return ndimage.binary_fill_holes(mask), score


def _merge(boxes):
    """Union boxes that overlap by more than :data:`MERGE_OVERLAP` of the smaller one,
    until none do. Boxes are ``[x0, y0, x1, y1, weight_sum, pixel_count]`` lists."""
    merged = True
    while merged:
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                iw = min(a[2], b[2]) - max(a[0], b[0])
                ih = min(a[3], b[3]) - max(a[1], b[1])
                smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
                if iw > 0 and ih > 0 and iw * ih > MERGE_OVERLAP * smaller:
                    boxes[i] = [
                        min(a[0], b[0]),
                        min(a[1], b[1]),
                        max(a[2], b[2]),
                        max(a[3], b[3]),
                        a[4] + b[4],
                        a[5] + b[5],
                    ]
                    del boxes[j]
                    merged = True
                    break
            if merged:
                break
    return boxes


def find_regions(image: Image.Image, max_regions: int = MAX_REGIONS) -> list[Region]:
    """Candidate products in ``image``, largest first (see the module docstring).

    Parameters
    ----------
    image : PIL.Image.Image
        The photo, any mode (converted to RGB).
    max_regions : int
        Most regions returned.

    Returns
    -------
    list of Region
        Boxes in ``image``'s pixels, each smaller than :data:`MAX_SHARE` of it; empty when
        the product fills the photo or nothing stands out.
    """
    from scipy import ndimage

    rgb = image.convert("RGB")
    w, h = rgb.size
    scale = min(1.0, WORK_SIZE / max(w, h))
    small = rgb.resize((max(8, round(w * scale)), max(8, round(h * scale))), Image.Resampling.BOX)
    a = np.asarray(small, dtype=np.float32) / 255.0
    sh, sw = a.shape[:2]
    mask, score = _foreground(a)
    labels, count = ndimage.label(mask)
    boxes = []
    for index, found in enumerate(ndimage.find_objects(labels), start=1):
        if found is None:
            continue
        patch = labels[found] == index
        pixels = int(patch.sum())
        if pixels < MIN_AREA * sh * sw:
            continue
        ys, xs = found
        weight = float(score[found][patch].sum())
        boxes.append([xs.start, ys.start, xs.stop, ys.stop, weight, pixels])
    regions = []
    for x0, y0, x1, y1, weight, pixels in _merge(boxes):
        if min(x1 - x0, y1 - y0) > 4 * BLUR_REACH:
            x0, y0, x1, y1 = x0 + BLUR_REACH, y0 + BLUR_REACH, x1 - BLUR_REACH, y1 - BLUR_REACH
        box = _scaled(x0, y0, x1, y1, MARGIN, w / sw, h / sh, w, h)
        if (box[2] - box[0]) * (box[3] - box[1]) > MAX_SHARE * w * h:
            continue
        if min(box[2] - box[0], box[3] - box[1]) < MIN_SIDE:
            continue
        regions.append(Region(box, weight / pixels))
    regions.sort(key=lambda r: -r.area)
    return regions[:max_regions]


def _scaled(x0, y0, x1, y1, margin, sx, sy, w, h):
    """A patch's box on the small copy, ``margin`` of its longer side added around it, in
    the photo's pixels (scales ``sx``, ``sy``) and within its ``w`` x ``h``."""
    pad = margin * max(x1 - x0, y1 - y0)
    return (
        max(0, int((x0 - pad) * sx)),
        max(0, int((y0 - pad) * sy)),
        min(w, int(np.ceil((x1 + pad) * sx))),
        min(h, int(np.ceil((y1 + pad) * sy))),
    )


def grow(box, size, margin=None):
    """``box`` with ``margin`` (:data:`MARGIN` by default) of its longer side added on every
    side, within a photo of ``size`` (width, height): a product's own box as a region would
    search it."""
    return _scaled(*box, MARGIN if margin is None else margin, 1, 1, *size)


def redundant(regions, image: Image.Image) -> bool:
    """Whether searching ``regions`` would add nothing to searching the whole ``image``:
    none, or a single one that the encoder's foreground crop already frames, margin included
    (it lies on a plain backdrop, which
    :func:`~visualsearch.encoders.preprocessing.foreground_box` peels off).

    The crop peels the backdrop off up to the product, so it rarely frames a region with
    its margin: a product alone on a plain backdrop is usually searched both ways, tightly
    cropped and with some surface around it, and the better view wins the fusion. On the
    demo that second view was worth it (``evaluate_visual``, compared with the product's
    outline instead, which makes such regions redundant: steep perspective 0.870 -> 0.893
    and 0.850 -> 0.910 on two draws, mean of the seven kinds 0.818 -> 0.828 and 0.810 ->
    0.820) for one more embedding of such photos."""
    from .encoders.preprocessing import foreground_box

    if not regions:
        return True
    if len(regions) > 1:
        return False
    box, backdrop = foreground_box(image.convert("RGB"))
    if backdrop is None:
        return False
    return iou(box, regions[0].box) > 0.5


def iou(a, b):
    """Intersection over union of two ``(x0, y0, x1, y1)`` boxes."""
    iw = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def views_of(image: Image.Image, localise: bool = True) -> list[tuple]:
    """``[(box, image), ...]``: the whole photo (box ``None``) first, then each candidate
    region worth searching on its own, cropped. Photo search embeds these views, and the
    projection's fit learns from the one that best frames the product."""
    views = [(None, image)]
    if not localise:
        return views
    regions = find_regions(image)
    if redundant(regions, image):
        return views
    return views + [(region.box, image.crop(region.box)) for region in regions]
