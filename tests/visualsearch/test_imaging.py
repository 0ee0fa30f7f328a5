"""Decoding of awkward uploads and crop validation (tiny generated images, no database)."""

import io

import numpy as np
import pytest
from PIL import Image

from visualsearch.distortions import display_copy, distort
from visualsearch.imaging import InvalidCrop, UnreadableImage, crop, open_image


def encode(im, fmt, **params):
    buf = io.BytesIO()
    im.save(buf, format=fmt, **params)
    return buf.getvalue()


def test_rgb_jpeg_from_bytes_path_and_file(tmp_path):
    im = Image.new("RGB", (12, 8), (200, 10, 10))
    data = encode(im, "JPEG", quality=95)
    path = tmp_path / "a.jpg"
    path.write_bytes(data)
    for source in (data, io.BytesIO(data), path, str(path)):
        out = open_image(source)
        assert out.mode == "RGB"
        assert out.size == (12, 8)
        r, g, b = out.getpixel((6, 4))
        assert r > 180 and g < 40 and b < 40


def test_result_is_usable_after_source_closed():
    data = encode(Image.new("RGB", (4, 4), (1, 2, 3)), "PNG")
    out = open_image(io.BytesIO(data))
    assert out.getpixel((0, 0)) == (1, 2, 3)
    out.resize((8, 8))  # would raise "Operation on closed image" if not detached


def test_exif_orientation_is_applied():
    # A landscape 20x10 image whose EXIF says "rotate 90 CW to display" (orientation 6).
    im = Image.new("RGB", (20, 10), (0, 0, 255))
    im.paste((255, 0, 0), (0, 0, 5, 10))  # red stripe on the left edge
    exif = Image.Exif()
    exif[0x0112] = 6
    out = open_image(encode(im, "JPEG", quality=95, exif=exif.tobytes()))
    assert out.size == (10, 20)
    # After rotating 90 degrees clockwise the left edge is at the top.
    r, g, b = out.getpixel((5, 1))
    assert r > 180 and b < 80


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_transparency_flattened_on_white(mode):
    im = Image.new(mode, (6, 6), (0, 0) if mode == "LA" else (0, 0, 0, 0))
    im.putpixel((0, 0), (0, 255) if mode == "LA" else (0, 0, 0, 255))
    out = open_image(encode(im, "PNG"))
    assert out.mode == "RGB"
    assert out.getpixel((3, 3)) == (255, 255, 255)
    assert out.getpixel((0, 0)) == (0, 0, 0)


def test_palette_with_transparency_flattened_on_white():
    im = Image.new("P", (6, 6), 0)
    im.putpalette([0, 0, 0, 10, 200, 10] + [0] * (256 * 3 - 6))
    im.putpixel((1, 1), 1)
    out = open_image(encode(im, "PNG", transparency=0))
    assert out.getpixel((3, 3)) == (255, 255, 255)
    assert out.getpixel((1, 1)) == (10, 200, 10)


def test_grey_cmyk_and_16_bit_become_rgb():
    grey = open_image(encode(Image.new("L", (4, 4), 128), "PNG"))
    assert grey.mode == "RGB" and grey.getpixel((0, 0)) == (128, 128, 128)

    cmyk = open_image(encode(Image.new("CMYK", (4, 4), (0, 255, 255, 0)), "JPEG", quality=95))
    r, g, b = cmyk.getpixel((1, 1))
    assert cmyk.mode == "RGB" and r > 200 and g < 60 and b < 60

    wide = Image.fromarray(np.full((4, 4), 65535 // 2, dtype=np.uint16))
    out = open_image(encode(wide, "PNG"))
    assert out.mode == "RGB"
    assert abs(out.getpixel((0, 0))[0] - 127) <= 1  # scaled, not clipped to 255


def test_animated_image_gives_first_frame():
    frames = [Image.new("RGB", (5, 5), c) for c in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=50)
    out = open_image(buf.getvalue())
    r, g, b = out.getpixel((2, 2))
    assert out.mode == "RGB" and r > 200 and b < 50


@pytest.mark.parametrize(
    "data",
    [b"", b"not an image at all", encode(Image.new("RGB", (64, 64)), "JPEG")[:40]],
    ids=["empty", "text", "truncated"],
)
def test_bad_data_raises_unreadable_image(data):
    with pytest.raises(UnreadableImage, match="Cannot read"):
        open_image(data)
    assert issubclass(UnreadableImage, ValueError)


def test_missing_file_raises_unreadable_image(tmp_path):
    with pytest.raises(UnreadableImage):
        open_image(tmp_path / "missing.jpg")


def test_crop_valid_box():
    im = Image.new("RGB", (10, 8))
    assert crop(im, (2, 1, 7, 8)).size == (5, 7)
    assert crop(im, [np.int64(0), 0, 10, 8]).size == (10, 8)


@pytest.mark.parametrize(
    "box",
    [
        (0, 0, 11, 8),  # beyond the right edge
        (-1, 0, 5, 5),  # negative
        (5, 0, 5, 8),  # empty width
        (6, 0, 2, 8),  # inverted
        (0, 3, 10, 2),  # inverted height
        (0, 0, 10.0, 8),  # float
        (0, 0, 10),  # too short
        "0,0,1,1",  # not numbers
        None,
        (True, 0, 5, 5),  # bools are not coordinates
    ],
)
def test_crop_rejects_bad_boxes(box):
    with pytest.raises(InvalidCrop):
        crop(Image.new("RGB", (10, 8)), box)
    assert issubclass(InvalidCrop, ValueError)


def test_distort_is_seeded_and_changes_the_image():
    im = Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8))
    a = distort(im, np.random.default_rng(5))
    b = distort(im, np.random.default_rng(5))
    c = distort(im, 6)
    assert a.mode == "RGB"
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert a.size != im.size or not np.array_equal(np.asarray(a), np.asarray(im))
    assert a.size != c.size or not np.array_equal(np.asarray(a), np.asarray(c))


@pytest.mark.parametrize(
    "size, expected", [((28, 28), (224, 224)), ((1000, 500), (224, 112)), ((90, 300), (67, 224))]
)
def test_display_copy_scales_the_longer_side(size, expected):
    assert display_copy(Image.new("L", size), 224).size == expected
