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
}
