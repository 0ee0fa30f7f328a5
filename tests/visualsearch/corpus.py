"""Generated uploads, good and bad, for the upload tests of the page, the API and uploads.py.

Every file is made here from a few bytes or a tiny Pillow image: nothing binary is committed.
``BAD_UPLOADS`` maps a case name to ``(make_bytes, filename, code, message fragment)``; the
same cases are answered with HTTP 400 by the page and by the API.
"""

import io
import struct
import zlib

import numpy as np
from PIL import Image


def encode(im, fmt, **params):
    buf = io.BytesIO()
    im.save(buf, format=fmt, **params)
    return buf.getvalue()


def noisy(size=(64, 48), mode="RGB", seed=0):
    """A random image: incompressible, so truncating its file really loses pixels."""
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "CMYK": 4, "RGBA": 4}.get(mode)
    shape = (size[1], size[0], channels) if channels else (size[1], size[0])
    return Image.fromarray(rng.integers(0, 256, size=shape, dtype=np.uint8), mode=mode)


def png(size=(64, 48), seed=0):
    return encode(noisy(size, seed=seed), "PNG")


def png_declaring(width, height):
    """A tiny valid PNG whose header claims ``width`` x ``height``: a decompression bomb."""
    data = bytearray(encode(Image.new("L", (1, 1)), "PNG"))
    # IHDR is the first chunk: 8-byte signature, 4-byte length, b"IHDR", 13 bytes, CRC.
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def truncated_png():
    data = png(size=(96, 96))
    return data[: len(data) // 2]


def truncated_jpeg():
    data = encode(noisy((96, 96)), "JPEG", quality=95)
    return data[: len(data) // 2]


def animated_gif():
    """Two frames: red, then blue; search must use the red one."""
    frames = [Image.new("RGB", (20, 20), (255, 0, 0)), Image.new("RGB", (20, 20), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    return buf.getvalue()


def cmyk_jpeg():
    return encode(Image.new("CMYK", (24, 16), (0, 255, 255, 0)), "JPEG", quality=95)


def exif_rotated_jpeg():
    """Stored 40x20 landscape; EXIF orientation 6 shows it as 20x40 portrait."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(noisy((40, 20)), "JPEG", quality=90, exif=exif.tobytes())


def many_scans_jpeg(copies=101):
    """A progressive JPEG whose last scan is repeated: each costs a pass over the picture."""
    data = encode(noisy(), "JPEG", progressive=True)
    last = data.rindex(b"\xff\xda")
    return data[:last] + data[last:-2] * copies + b"\xff\xd9"


def many_strips_tiff(strips=40_000):
    """A TIFF header whose first picture lists ``strips`` strip offsets (no pixels)."""
    entry = struct.pack("<HHII", 273, 4, strips, 26)  # StripOffsets, LONG, count, offset
    return b"II*\x00" + struct.pack("<IH", 8, 1) + entry + struct.pack("<I", 0)


def many_comment_blocks_gif(blocks=17_000):
    """A 1 x 1 GIF whose comment comes in ``blocks`` one-byte blocks."""
    return (
        b"GIF89a" + struct.pack("<HHBBB", 1, 1, 0, 0, 0) + b"\x21\xfe" + b"\x01a" * blocks
        + b"\x00" + b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"
        + b"\x3b"
    )  # fmt: skip


def many_text_chunks_png(chunks=1_100):
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for i in range(chunks):
        info.add_text(f"k{i}", "v")
    return encode(noisy((8, 8)), "PNG", pnginfo=info)


def commented_gif():
    return encode(noisy((16, 16)).convert("P"), "GIF", comment=b"made by a camera")


SVG = (
    b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
    b'<rect width="10" height="10" fill="red"/></svg>'
)

BAD_UPLOADS = {
    "empty": (lambda: b"", "empty.png", "empty", "empty"),
    "text": (
        lambda: b"just some words, not a photo\n" * 20,
        "notes.txt",
        "not_an_image",
        "not an image",
    ),
    "html_as_jpg": (
        lambda: b"<html><body>hi</body></html>",
        "x.jpg",
        "not_an_image",
        "not an image",
    ),
    "svg": (lambda: SVG, "drawing.svg", "unsupported_format", "SVG"),
    "ico": (lambda: encode(noisy((16, 16)), "ICO"), "favicon.ico", "unsupported_format", "ICO"),
    "ppm": (lambda: encode(noisy((16, 16)), "PPM"), "photo.ppm", "unsupported_format", "PPM"),
    "truncated_png": (truncated_png, "cut.png", "corrupt", "damaged or incomplete"),
    "truncated_jpeg": (truncated_jpeg, "cut.jpg", "corrupt", "damaged or incomplete"),
    "png_header_only": (lambda: png()[:40], "head.png", "corrupt", "damaged or incomplete"),
    "jpeg_garbage": (
        lambda: b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4,
        "garbage.jpg",
        "corrupt",
        "damaged or incomplete",
    ),
    # Over VISUALSEARCH_MAX_PIXELS (40 Mpx) but under Pillow's own bomb limit (89 Mpx).
    "too_many_pixels": (
        lambda: png_declaring(8000, 6000),
        "big.png",
        "too_many_pixels",
        "8000×6000 pixels",
    ),
    # Over Pillow's limit: a DecompressionBombWarning inside Image.open.
    "bomb_warning": (
        lambda: png_declaring(10000, 10000),
        "bomb.png",
        "too_many_pixels",
        "megapixels",
    ),
    # Cheap to upload, dear to open (visualsearch.file_structure): refused before decoding.
    "many_scans": (many_scans_jpeg, "scans.jpg", "too_complex", "more than 100 scans"),
    "many_strips": (many_strips_tiff, "strips.tif", "too_complex", "more than 32,768 strips"),
    "many_blocks": (many_comment_blocks_gif, "blocks.gif", "too_complex", "comment blocks"),
    "many_texts": (many_text_chunks_png, "texts.png", "too_complex", "text chunks"),
    # Within the pixel cap, but 21 times as long as it is wide: a row at a time costs more.
    "too_narrow": (lambda: png((63, 3)), "strip.png", "too_narrow", "63×3 pixels"),
    # Over twice Pillow's limit: a DecompressionBombError inside Image.open.
    "bomb_error": (
        lambda: png_declaring(50000, 50000),
        "bomb.png",
        "too_many_pixels",
        "megapixels",
    ),
}

GOOD_UPLOADS = {
    "png": (png, "photo.png"),
    "jpeg": (lambda: encode(noisy(), "JPEG"), "photo.jpg"),
    "webp": (lambda: encode(noisy(), "WEBP"), "photo.webp"),
    "bmp": (lambda: encode(noisy(), "BMP"), "photo.bmp"),
    "tiff": (lambda: encode(noisy(), "TIFF"), "photo.tif"),
    "rgba_png": (lambda: encode(noisy(mode="RGBA"), "PNG"), "cutout.png"),
    "animated_gif": (animated_gif, "anim.gif"),
    "cmyk_jpeg": (cmyk_jpeg, "print.jpg"),
    "exif_rotated": (exif_rotated_jpeg, "phone.jpg"),
    "progressive_jpeg": (lambda: encode(noisy(), "JPEG", progressive=True), "prog.jpg"),
    "commented_gif": (commented_gif, "note.gif"),
    "text_png": (lambda: many_text_chunks_png(20), "texts.png"),
    "long_but_not_too_long": (lambda: png((60, 3)), "banner.png"),
}
