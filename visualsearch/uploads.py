"""Validation of a shopper's query photo, shared by the search page and the API.

Everything a shopper can get wrong with an upload ends here as :class:`InvalidUpload`, whose
message is written for the shopper and which both front ends answer with HTTP 400: an empty or
oversized file, something that is not an image (a text file, an SVG), an image format outside
the allow-list, a truncated or corrupt file, a decompression bomb, or a crop box that is
malformed or outside the photo. Anything Pillow raises while decoding untrusted bytes is
caught here, so a hostile file can never become a 500.

Limits come from ``VISUALSEARCH_MAX_UPLOAD_BYTES``, ``VISUALSEARCH_MAX_PIXELS`` and
``VISUALSEARCH_UPLOAD_FORMATS``. The photo is decoded in memory and forgotten unless
``VISUALSEARCH_STORE_UPLOADS`` asks for a copy, and only as large as the search needs: the
preview near ``VISUALSEARCH_PREVIEW_SIZE``, the searched area near the encoders'
:data:`~visualsearch.imaging.WORKING_SIZE` (see :mod:`visualsearch.imaging`), so that the
memory one upload takes is bounded by the pixel cap whatever the file's format. The request
body itself is read by :class:`visualsearch.upload_handlers.PhotoUploadHandler`, which stops
at the size limit.
"""

from __future__ import annotations

import io
import logging
import re
import uuid
import warnings
from dataclasses import dataclass

from django.template.defaultfilters import filesizeformat
from django.utils.formats import number_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from PIL import Image, UnidentifiedImageError

from .conf import app_settings
from .file_structure import costly_message, costly_structure
from .imaging import (
    TURN_DEGREES,
    WORKING_SIZE,
    InvalidCrop,
    TooManyPixels,
    UnreadableImage,
    open_image_parts,
)

__all__ = [
    "BOX_TOO_LONG",
    "MAX_BOX_LENGTH",
    "InvalidUpload",
    "QueryPhoto",
    "TURN_DEGREES",
    "parse_box",
    "parse_turn",
    "read_photo",
]

#: Longest crop box accepted, in characters: four coordinates of a 40-megapixel photo with
#: browsers' fractional ``.0`` and spaces take about 40.
MAX_BOX_LENGTH = 64
BOX_TOO_LONG = gettext_lazy(
    "The selected area is too long; it must be four whole numbers of pixels: x0,y0,x1,y1."
)

#: The longest side of a photo searched is at most this many times its shorter side. The
#: pixel cap alone let a 39,999,999 x 1 PNG (155 kB) through, which took 650 MB to decode
#: (Pillow keeps a pointer per row, and a one-row image is converted in one piece); no
#: product photo, panorama or phone screenshot is that long.
MAX_ASPECT_RATIO = 20

#: Pillow's names for variants of an accepted format: MPO is a JPEG with the Multi-Picture
#: extension (a second, smaller image), which many phones and cameras write.
_FORMAT_FAMILY = {"MPO": "JPEG"}

logger = logging.getLogger(__name__)


class InvalidUpload(ValueError):
    """An uploaded photo or crop box was refused; ``str()`` is a message for the shopper.

    ``field`` names the input at fault (``"image"`` or ``"box"``) so that forms and
    serializers attach the message to the right field; ``code`` is a stable
    machine-readable reason for API clients.
    """

    def __init__(self, message, code="invalid", field="image"):
        super().__init__(message)
        self.message = message
        self.code = code
        self.field = field


@dataclass(frozen=True)
class QueryPhoto:
    """A validated upload: the whole upright photo and the part to search with, each only
    as large as it is used (a 40-megapixel photo is never held at full size)."""

    image: Image.Image
    """The whole photo, for the shopper's preview: RGB, EXIF orientation applied, first
    frame of an animation, reduced by an integer factor to no less than
    ``VISUALSEARCH_PREVIEW_SIZE`` on its longer side (:func:`.previews.preview_data_url`
    makes the preview itself)."""
    query: Image.Image
    """The photo's ``box``, or the whole photo, reduced by an integer factor to no less than
    :data:`~visualsearch.imaging.WORKING_SIZE` on its longer side, as the catalogue's images
    are, for the encoder; ``image`` itself when they are the same."""
    format: str
    box: tuple[int, int, int, int] | None = None
    stored_name: str | None = None
    """Name in default storage when ``VISUALSEARCH_STORE_UPLOADS`` is on."""
    size: tuple[int, int] | None = None
    """``(width, height)`` of the upright photo at full size, in which ``box`` is given."""


def parse_box(value):
    """Parse a crop box given as ``"x0,y0,x1,y1"`` (or a sequence of four numbers).

    Returns ``None`` for an empty value. Coordinates are pixels of the upright photo, ``x1``
    and ``y1`` exclusive; whether the box fits the photo is checked by :func:`read_photo`,
    which knows its size.

    Raises
    ------
    InvalidUpload
        If the value is not four whole numbers.
    """
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, str) and len(value) > MAX_BOX_LENGTH:
        raise InvalidUpload(str(BOX_TOO_LONG), code="invalid_box", field="box")
    parts = value.split(",") if isinstance(value, str) else list(value)
    try:
        numbers = [_whole_number(part) for part in parts]
    except (TypeError, ValueError):
        numbers = None
    if numbers is None or len(numbers) != 4:
        raise InvalidUpload(
            _("The selected area must be four whole numbers of pixels: x0,y0,x1,y1."),
            code="invalid_box",
            field="box",
        )
    return tuple(numbers)


#: A coordinate as text: ASCII digits, at most seven after any leading zeros (no photo is
#: wider), and "12.0" from
#: browsers that report fractional pixel positions; a minus sign is read, to be refused as
#: outside the photo. ``float()`` would also take "1e2", "1_0", other scripts' digits and
#: numbers hundreds of digits long, which the API's schema does not allow.
_COORDINATE = re.compile(r"-?0*[0-9]{1,7}(?:\.0*)?", re.ASCII)


def parse_turn(value):
    """A turn given as 0, 90, 180 or 270 degrees clockwise (or their text; empty is 0)."""
    if value in (None, ""):
        return 0
    text = str(value).strip()
    if text.isascii() and text.isdigit() and int(text) in TURN_DEGREES:
        return int(text)
    raise InvalidUpload(
        _("A turn is 0, 90, 180 or 270 degrees clockwise."), code="invalid_turn", field="turn"
    )


def _whole_number(part):
    if isinstance(part, str):
        part = part.strip()
        if not _COORDINATE.fullmatch(part):
            raise ValueError(part)
        number = float(part)
    else:
        number = float(part)
    if not number.is_integer():
        raise ValueError(part)
    return int(number)


def read_photo(upload, box=None, turn=0):
    """Validate an uploaded file and decode it for searching.

    Parameters
    ----------
    upload : django.core.files.uploadedfile.UploadedFile or file-like object
        The shopper's photo.
    box : str, sequence of 4 ints or None
        Optional area to search with, as accepted by :func:`parse_box`, in pixels of the
        photo once turned.
    turn : int or str
        Degrees clockwise (0, 90, 180, 270) to turn the photo by first, for a photo saved
        sideways without an EXIF orientation (:func:`parse_turn`).

    Returns
    -------
    QueryPhoto

    Raises
    ------
    InvalidUpload
        With a message for the shopper, for every way the upload can be unusable.
    """
    box = parse_box(box)
    turn = parse_turn(turn)
    data = _read_bytes(upload)
    fmt = _check_header(data)
    # One decoding for both: the preview of the whole photo and the area searched.
    parts = [(None, app_settings.PREVIEW_SIZE), (box, WORKING_SIZE)]
    try:
        # The header check already refused bombs; the filter keeps a frame or tile that
        # declares a larger size from slipping through during decoding.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            size, (image, query) = open_image_parts(
                data, parts, max_pixels=app_settings.MAX_PIXELS, turn=turn
            )
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise _too_many_pixels() from exc
    except TooManyPixels as exc:
        raise _too_many_pixels(exc.width, exc.height, exc) from exc
    except InvalidCrop as exc:
        width, height = exc.size
        raise InvalidUpload(
            _(
                "The selected area %(box)s is not a rectangle inside the photo "
                "(%(width)s×%(height)s pixels); choose an area within it."
            )
            % {"box": ",".join(map(str, box)), "width": width, "height": height},
            code="box_outside",
            field="box",
        ) from exc
    except UnreadableImage as exc:
        raise _damaged(fmt) from exc
    except Exception as exc:  # hostile files can make any decoder raise
        logger.info("Refused an upload Pillow could not decode", exc_info=True)
        raise _damaged(fmt) from exc
    stored_name = _store(data, fmt) if app_settings.STORE_UPLOADS else None
    return QueryPhoto(
        image=image, query=query, format=fmt, box=box, stored_name=stored_name, size=size
    )


def _read_bytes(upload):
    limit = app_settings.MAX_UPLOAD_BYTES
    size = getattr(upload, "size", None)
    if size is not None and size > limit:
        raise _too_large(size, limit)
    if hasattr(upload, "seek"):
        upload.seek(0)
    # Read one byte past the limit so that a file without a known size is still bounded.
    data = upload.read(limit + 1)
    if not data:
        raise InvalidUpload(_("The file is empty; please choose a photo."), code="empty")
    if len(data) > limit:
        raise _too_large(size or len(data), limit)
    return data


def _damaged(fmt=None):
    if fmt is None:
        message = _("The file is damaged or incomplete; please upload it again.")
    else:
        message = _("The %(format)s file is damaged or incomplete; please upload it again.") % {
            "format": fmt
        }
    return InvalidUpload(message, code="corrupt")


def _too_large(size, limit):
    return InvalidUpload(
        _("The photo is %(size)s; photos up to %(limit)s are accepted.")
        % {"size": filesizeformat(size), "limit": filesizeformat(limit)},
        code="too_large",
    )


def _megapixels(pixels):
    value = round(pixels / 1e6, 1)
    return number_format(value, 0 if value == int(value) else 1)


def _too_many_pixels(width=None, height=None, refusal=None):
    """The refusal of a photo over the pixel cap; ``refusal`` is imaging's
    :class:`~visualsearch.imaging.TooManyPixels` when its format was held to fewer pixels
    because it takes more memory to decode (a progressive JPEG, WebP)."""
    # In the reader's own digits ("26,4" in German), as few decimals as the figure needs.
    megapixels = _megapixels(app_settings.MAX_PIXELS)
    if width and refusal is not None and refusal.limit and refusal.limit < app_settings.MAX_PIXELS:
        kind = _("progressive JPEG") if refusal.progressive else refusal.format
        message = _(
            "The photo is %(width)s×%(height)s pixels; "
            "%(kind)s photos up to %(megapixels)s megapixels are accepted."
        ) % {
            "width": width,
            "height": height,
            "kind": kind,
            "megapixels": _megapixels(refusal.limit),
        }
    elif width:
        message = _(
            "The photo is %(width)s×%(height)s pixels; "
            "photos up to %(megapixels)s megapixels are accepted."
        ) % {"width": width, "height": height, "megapixels": megapixels}
    else:
        message = _(
            "The photo has too many pixels; photos up to %(megapixels)s megapixels are accepted."
        ) % {"megapixels": megapixels}
    return InvalidUpload(message, code="too_many_pixels")


def _accepted_formats():
    return ", ".join(app_settings.UPLOAD_FORMATS)


#: Leading bytes of the accepted formats: a file that starts like an image but cannot be
#: identified is damaged rather than "not an image".
_SIGNATURES = (
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",
    b"GIF87a",
    b"GIF89a",
    b"RIFF",
    b"BM",
    b"II*\x00",
    b"MM\x00*",
)


def _check_header(data):
    """Identify the format and size from the header, without decoding any pixels; refuse
    files that cost far more to open than their pixels say (:mod:`.file_structure`)."""
    costly = costly_structure(data)
    if costly is not None:
        raise InvalidUpload(costly_message(*costly), code="too_complex")
    head = data[:1024].lstrip().lower()
    if head.startswith((b"<svg", b"<?xml", b"<!doctype svg")) and b"<svg" in head:
        raise InvalidUpload(
            _("SVG drawings cannot be searched; upload a photo (%(formats)s).")
            % {"formats": _accepted_formats()},
            code="unsupported_format",
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                fmt, (width, height) = im.format, im.size
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise _too_many_pixels() from exc
    except UnidentifiedImageError as exc:
        if data.startswith(_SIGNATURES):
            raise _damaged() from exc
        raise InvalidUpload(
            _("This file is not an image we can read; upload a photo (%(formats)s).")
            % {"formats": _accepted_formats()},
            code="not_an_image",
        ) from exc
    except Exception as exc:  # a malformed header can raise anything
        raise _damaged() from exc
    fmt = _FORMAT_FAMILY.get(fmt, fmt)
    if fmt not in app_settings.UPLOAD_FORMATS:
        raise InvalidUpload(
            _("%(format)s images are not supported; upload one of %(formats)s.")
            % {"format": fmt, "formats": _accepted_formats()},
            code="unsupported_format",
        )
    if width <= 0 or height <= 0:
        raise InvalidUpload(_("The image has no pixels."), code="corrupt")
    if width * height > app_settings.MAX_PIXELS:
        raise _too_many_pixels(width, height)
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise InvalidUpload(
            _(
                "The image is %(width)s×%(height)s pixels; a photo whose longer side is at "
                "most %(ratio)s times its shorter side can be searched."
            )
            % {"width": width, "height": height, "ratio": MAX_ASPECT_RATIO},
            code="too_narrow",
        )
    return fmt


def _store(data, fmt):
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    extension = {"JPEG": "jpg", "TIFF": "tif"}.get(fmt, fmt.lower())
    name = f"{app_settings.UPLOAD_DIR.rstrip('/')}/{uuid.uuid4().hex}.{extension}"
    return default_storage.save(name, ContentFile(data))
