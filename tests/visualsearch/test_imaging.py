"""Decoding of awkward uploads and crop validation (tiny generated images, no database)."""

import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from tests.visualsearch import corpus
from visualsearch.distortions import display_copy, distort
from visualsearch.imaging import (
    InvalidCrop,
    TooManyPixels,
    UnreadableImage,
    crop,
    decode_cost,
    open_image,
    open_image_parts,
)


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
    with pytest.raises(UnreadableImage, match="Cannot read") as excinfo:
        open_image(data)
    assert issubclass(UnreadableImage, ValueError)
    # Said for a person: no object's repr ("<_io.BytesIO object at 0x...>").
    assert "object at 0x" not in str(excinfo.value) and "<" not in str(excinfo.value)


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


# -- decoding only what is needed ------------------------------------------------------------


def noisy(size, mode="RGB", seed=0):
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4}[mode]
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_box_is_in_pixels_of_the_upright_image_whatever_the_orientation(orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(noisy((40, 30)), "PNG", exif=exif.tobytes())
    upright = ImageOps.exif_transpose(Image.open(io.BytesIO(data)).convert("RGB"))
    box = (3, 5, 17, 21)
    size, [whole, part] = open_image_parts(data, [(None, None), (box, None)])
    assert size == upright.size == ((30, 40) if orientation >= 5 else (40, 30))
    assert whole.tobytes() == upright.tobytes()
    assert part.tobytes() == upright.crop(box).tobytes()


def test_large_images_are_reduced_strip_by_strip_as_if_whole():
    # RGBA: transparency is flattened before reducing, as on the full image; 1100 px wide
    # strips of 2**18 pixels make several strips, and 700 rows are not a multiple of them.
    im = noisy((1100, 700), "RGBA")
    data = encode(im, "PNG")
    reduced = open_image(data, min_side=300)
    assert reduced.size == (367, 234)  # by 1100 // 300 = 3, rounded up
    assert reduced.tobytes() == open_image(data).reduce(3).tobytes()
    # Small enough images are not reduced at all.
    assert open_image(data, min_side=1100).tobytes() == open_image(data).tobytes()


def test_a_jpeg_is_decoded_at_a_reduced_scale_and_its_box_scaled():
    im = Image.new("RGB", (4000, 3000), (0, 0, 255))
    im.paste((255, 0, 0), (3000, 0, 4000, 1000))  # the top-right corner
    data = encode(im, "JPEG", quality=90)
    size, [whole, corner] = open_image_parts(data, [(None, 1024), ((3000, 0, 4000, 1000), 256)])
    # Decoded at half scale (the coarsest that leaves both parts their size), then the
    # corner, 500 pixels there, reduced by 500 // 256 = 1.
    assert size == (4000, 3000)
    assert whole.size == (2000, 1500) and corner.size == (500, 500)
    r, g, b = corner.getpixel((250, 250))
    assert r > 240 and g < 15 and b < 15
    r, g, b = whole.getpixel((1450, 480))  # just left of the corner
    assert b > 240 and r < 15
    assert whole.getpixel((1550, 480))[0] > 240


def test_wide_greys_are_scaled_onto_8_bits():
    wide = np.zeros((1200, 900), dtype=np.uint16)
    wide[:, 450:] = 65535
    out = open_image(encode(Image.fromarray(wide), "PNG"), min_side=300)
    assert out.size == (225, 300)
    assert out.getpixel((10, 10)) == (0, 0, 0) and out.getpixel((200, 10)) == (255, 255, 255)
    floats = np.linspace(-1.0, 3.0, 64 * 64, dtype=np.float32).reshape(64, 64)
    floats[0, 0], floats[0, 1] = np.nan, np.inf  # ignored by the range, black and white
    out = open_image(encode(Image.fromarray(floats), "TIFF"))
    assert out.getpixel((2, 0))[0] == 0 and out.getpixel((63, 63))[0] == 255
    assert out.getpixel((0, 0))[0] == 0 and out.getpixel((1, 0))[0] == 255


def test_the_pixel_cap_is_checked_before_decoding():
    # The file declares 8000x6000 but holds one pixel: decoding would call it truncated.
    data = corpus.png_declaring(8000, 6000)
    with pytest.raises(TooManyPixels) as excinfo:
        open_image(data, max_pixels=40_000_000)
    assert (excinfo.value.width, excinfo.value.height) == (8000, 6000)
    assert excinfo.value.limit == 40_000_000
    assert issubclass(TooManyPixels, UnreadableImage)


def test_a_decompression_bomb_is_too_many_pixels():
    with pytest.raises(TooManyPixels, match="decompression bomb"):
        open_image(corpus.png_declaring(50000, 50000))


def test_formats_that_need_more_memory_are_held_to_fewer_pixels():
    photo = noisy((400, 320))  # 128,000 pixels
    baseline = encode(photo, "JPEG")
    progressive = encode(photo, "JPEG", progressive=True, subsampling=0)
    with Image.open(io.BytesIO(progressive)) as im:
        # libjpeg keeps every coefficient of a progressive JPEG: 6 bytes a pixel at 4:4:4.
        assert decode_cost(im) == 128_000 * (4 + 6)
    assert open_image(baseline, max_pixels=128_000).size == (400, 320)
    with pytest.raises(TooManyPixels) as excinfo:
        open_image(progressive, max_pixels=128_000)
    assert excinfo.value.progressive and excinfo.value.limit < 128_000
    # A coarser JPEG scale does not shrink the coefficients: only a larger budget helps.
    assert open_image(progressive, min_side=100, max_pixels=250_000).size == (100, 80)
    webp = encode(photo, "WEBP")
    with pytest.raises(TooManyPixels) as excinfo:
        open_image(webp, max_pixels=128_000)
    assert excinfo.value.format == "WEBP" and excinfo.value.limit == 32_000


def test_mpo_is_read_as_its_first_image():
    first, second = Image.new("RGB", (64, 48), (255, 0, 0)), Image.new("RGB", (64, 48), (0, 0, 255))
    buf = io.BytesIO()
    first.save(buf, "MPO", save_all=True, append_images=[second])
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        assert im.format == "MPO" and im.n_frames == 2
    out = open_image(buf.getvalue(), min_side=32)
    r, g, b = out.getpixel((16, 12))
    assert out.size == (32, 24) and r > 240 and b < 15
