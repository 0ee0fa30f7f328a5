"""What an image file costs to open beyond its pixels, read from its bytes before decoding.

The pixel cap (``VISUALSEARCH_MAX_PIXELS``) bounds the memory of the decoded photo, but some
files cost far more to open than their pixels say, and each is small enough to upload:

* a progressive JPEG decodes every scan in turn; one whose last scan is repeated 20,000
  times (296 kB, a flat 2000 x 2000 picture) took 41 s of one core, and four of them held
  every photo-search slot of a server;
* a TIFF lists the offset of every strip; Pillow builds an entry for each when it opens the
  file, so 2,400,000 one-row strips (9.6 MB) took 16 s and 770 MB before any pixel;
* a GIF's comment is read block by block and joined: 1,960,000 one-byte blocks (9.8 MB) took
  1.6 s and 330 MB;
* a PNG's text chunks are read one by one (thousands of them took 1.9 s).

An ordinary photo has 1 scan (baseline) or about 10 (progressive), a few hundred to a few
thousand strips, a handful of comment blocks and text chunks; the limits below are far
above those and far below what costs seconds. :func:`costly_structure` counts with
``bytes.count`` and a walk that stops at the limit, so checking costs milliseconds on the
largest upload.
"""

from __future__ import annotations

import struct

from django.utils.formats import number_format
from django.utils.translation import gettext as _

__all__ = [
    "MAX_GIF_EXTENSION_BLOCKS",
    "MAX_JPEG_SCANS",
    "MAX_PNG_TEXT_CHUNKS",
    "MAX_TIFF_PARTS",
    "costly_message",
    "costly_structure",
]

#: Start-of-scan markers in a JPEG (an MPO's pictures together; an EXIF thumbnail adds one).
MAX_JPEG_SCANS = 100
#: Strips or tiles of a TIFF's first picture (a 28,000-row photo in one-row strips fits).
MAX_TIFF_PARTS = 32_768
#: Data blocks of the extensions before a GIF's first picture (an XMP packet takes hundreds).
MAX_GIF_EXTENSION_BLOCKS = 16_384
#: Text chunks of a PNG.
MAX_PNG_TEXT_CHUNKS = 1_024

_TIFF_PART_TAGS = (273, 324)  # StripOffsets, TileOffsets


def costly_structure(data: bytes) -> tuple[str, int] | None:
    """``(what, limit)`` when the file holds more than ``limit`` of a costly part, which no
    photo does: ``"scans"``, ``"strips"``, ``"blocks"`` or ``"text chunks"``; ``None``
    otherwise (and for bytes of other formats: the decoder judges them)."""
    if data.startswith(b"\xff\xd8"):
        # In entropy-coded data every 0xFF byte is followed by 0x00 or a restart marker,
        # so each FF DA is a start of scan (or one of an embedded thumbnail's).
        found, what, limit = data.count(b"\xff\xda"), "scans", MAX_JPEG_SCANS
    elif data.startswith((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")):
        found, what, limit = _tiff_parts(data), "strips", MAX_TIFF_PARTS
    elif data.startswith((b"GIF87a", b"GIF89a")):
        limit = MAX_GIF_EXTENSION_BLOCKS
        found, what = _gif_extension_blocks(data, limit + 1), "blocks"
    elif data.startswith(b"\x89PNG\r\n\x1a\n"):
        found = sum(data.count(name) for name in (b"tEXt", b"zTXt", b"iTXt"))
        what, limit = "text chunks", MAX_PNG_TEXT_CHUNKS
    else:
        return None
    return (what, limit) if found > limit else None


def costly_message(what, limit):
    """The shopper's message for a file :func:`costly_structure` refused."""
    parts = {
        "scans": _("more than %(limit)s scans"),
        "strips": _("more than %(limit)s strips"),
        "blocks": _("more than %(limit)s comment blocks"),
        "text chunks": _("more than %(limit)s text chunks"),
    }[what] % {"limit": number_format(limit, force_grouping=True)}
    return _(
        "This file is built in a way that would take too long to read (%(parts)s); save the "
        "photo again as an ordinary JPEG or PNG and search with that."
    ) % {"parts": parts}


def _tiff_parts(data):
    """The number of strip or tile offsets of a TIFF's (or BigTIFF's) first picture; 0 when
    the header cannot be read (the decoder then refuses the file)."""
    order = "<" if data[:2] == b"II" else ">"
    try:
        if data[2:4] in (b"*\x00", b"\x00*"):  # classic TIFF: 4-byte offsets, 12-byte entries
            (ifd,) = struct.unpack_from(order + "I", data, 4)
            (entries,) = struct.unpack_from(order + "H", data, ifd)
            size, first, entry = 12, ifd + 2, order + "HHI"
        else:  # BigTIFF: 8-byte offsets, 20-byte entries
            (ifd,) = struct.unpack_from(order + "Q", data, 8)
            (entries,) = struct.unpack_from(order + "Q", data, ifd)
            size, first, entry = 20, ifd + 8, order + "HHQ"
        parts = 0
        for i in range(min(entries, 4096)):
            tag, _type, number = struct.unpack_from(entry, data, first + i * size)
            if tag in _TIFF_PART_TAGS:
                parts = max(parts, number)
        return parts
    except struct.error:
        return 0


def _gif_extension_blocks(data, limit):
    """Data blocks of the extensions before a GIF's first picture, counted up to ``limit``."""
    try:
        flags = data[10]
        at = 13 + (3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0)  # global colour table
        blocks = 0
        while at < len(data) and data[at] == 0x21 and blocks < limit:  # an extension
            at += 2  # introducer and label
            while data[at] and blocks < limit:  # data blocks until the empty one
                at += data[at] + 1
                blocks += 1
            at += 1
        return blocks
    except IndexError:
        return 0
