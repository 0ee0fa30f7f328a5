"""Catalogue images as a reindex reads them: the bytes from the adapter's storage, their
checksum, and the decoded image the encoders get.

A failure here belongs to the image, never to the run: reading raises ``OSError`` and
decoding anything at all, which the callers record as the image's ``IndexFailure``.
"""

from __future__ import annotations

import hashlib

from django.utils.formats import number_format
from django.utils.translation import gettext

from lookalike.catalogue import get_adapter

from ..conf import app_settings


def read_image_bytes(name) -> bytes:
    """The bytes of the catalogue image ``name``, never more than
    ``VISUALSEARCH_MAX_CATALOGUE_BYTES``.

    Any failure of the storage (a missing file, a name it refuses as suspicious) is an
    ``OSError``, which the callers record as this image's failure, not the run's; so is a
    file over the limit, of which one byte more than the limit is read.
    """
    limit = int(app_settings.MAX_CATALOGUE_BYTES)
    try:
        with get_adapter().open_image(name) as fh:
            data = _read_at_most(fh, limit + 1)
    except OSError:
        raise
    except Exception as exc:
        raise OSError(f"{type(exc).__name__}: {exc}") from exc
    if len(data) > limit:
        raise OSError(
            gettext(
                "the file is over %(limit)s bytes (VISUALSEARCH_MAX_CATALOGUE_BYTES); it was "
                "not read further"
            )
            % {"limit": number_format(limit, force_grouping=True)}
        )
    return data


def _read_at_most(fh, n) -> bytes:
    """Up to ``n`` bytes of ``fh``: a storage's file may return fewer than asked before its
    end (a stream), so read until the end or ``n``."""
    parts, size = [], 0
    while size < n:
        part = fh.read(n - size)
        if not part:
            break
        parts.append(part)
        size += len(part)
    return b"".join(parts)


def open_catalogue_image(data):
    """Decode a catalogue image as the encoders get it, the same way as a shopper's photo
    (:func:`visualsearch.uploads.read_photo`): upright RGB reduced by an integer factor
    to no less than :data:`~visualsearch.imaging.WORKING_SIZE`, refused (``TooManyPixels``)
    above ``VISUALSEARCH_MAX_CATALOGUE_PIXELS``."""
    from ..imaging import WORKING_SIZE, open_image

    return open_image(data, min_side=WORKING_SIZE, max_pixels=app_settings.MAX_CATALOGUE_PIXELS)


def decoding_failure(exc) -> str:
    """The ``IndexFailure`` reason for an image that did not decode, in the language of the
    process (:mod:`visualsearch.imaging`'s own messages are for logs and commands)."""
    from PIL import UnidentifiedImageError

    from ..imaging import TooManyPixels, UnreadableImage

    if isinstance(exc, TooManyPixels):
        if exc.width is None:
            return gettext(
                "The image declares far more pixels than a catalogue image may have "
                "(a decompression bomb)."
            )
        return gettext(
            "The image is %(width)s×%(height)s pixels; images of its kind are accepted up "
            "to %(limit)s pixels (VISUALSEARCH_MAX_CATALOGUE_PIXELS)."
        ) % {
            "width": exc.width,
            "height": exc.height,
            "limit": number_format(exc.limit, force_grouping=True),
        }
    if isinstance(exc, UnreadableImage):
        if isinstance(exc.__cause__, UnidentifiedImageError):
            return gettext("The file is not an image, or not in a format that can be read.")
        cause = exc.__cause__ or exc
        return gettext("The image is damaged or cut short: %(error)s") % {"error": cause}
    return gettext("Cannot decode the image: %(error)s") % {"error": f"{type(exc).__name__}: {exc}"}


def checksum(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
