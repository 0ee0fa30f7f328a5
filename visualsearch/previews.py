"""The shopper's photo shown back: a preview without storing it, and boxes carried between
the photo's sizes (the working copy searched, the preview shown, the full-size photo the API
speaks of)."""

from __future__ import annotations

import base64
import io

from PIL import Image

from .conf import app_settings

__all__ = ["preview_data_url", "scale_box"]


def scale_box(box, source_size, target_size):
    """``box`` (x0, y0, x1, y1, in pixels of an image of ``source_size``) in pixels of the
    same picture at ``target_size``: the regions photo search finds on its working copy
    are shown on the preview and returned in pixels of the full-size photo."""
    sx, sy = target_size[0] / source_size[0], target_size[1] / source_size[1]
    x0, y0, x1, y1 = box
    return (
        max(0, int(x0 * sx)),
        max(0, int(y0 * sy)),
        min(int(target_size[0]), -int(-x1 * sx // 1)),
        min(int(target_size[1]), -int(-y1 * sy // 1)),
    )


def preview_data_url(image, max_side=None):
    """Encode ``image`` as a small JPEG ``data:`` URL to show it back without storing it.

    Returns ``(url, width, height)``: the preview's own size, which may be smaller than the
    photo's. A crop chosen on the preview is in the preview's pixels; the page uploads the
    preview itself with such a box, so the two always agree.
    """
    max_side = max_side or app_settings.PREVIEW_SIZE
    preview = image
    if max(image.size) > max_side:
        preview = image.copy()
        preview.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    preview.save(buf, format="JPEG", quality=90)
    encoded = base64.b64encode(buf.getvalue()).decode("ascii")
    return f"data:image/jpeg;base64,{encoded}", preview.width, preview.height
