"""Upload validation (visualsearch.uploads) over the generated corpus, and how the request
body is read (visualsearch.upload_handlers). Only the tests of whole requests use the
database (the pixel encoder, an empty catalogue)."""

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.files.uploadhandler import FileUploadHandler
from django.http.multipartparser import MultiPartParser
from django.test import Client
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart
from django.urls import reverse
from PIL import Image

from tests.visualsearch import corpus
from visualsearch.previews import preview_data_url
from visualsearch.upload_handlers import PhotoUploadHandler, TooLargeUpload
from visualsearch.uploads import (
    MAX_BOX_LENGTH,
    InvalidUpload,
    parse_box,
    read_photo,
)


def upload(data, name="photo.png"):
    return SimpleUploadedFile(name, data, content_type="application/octet-stream")


@pytest.mark.parametrize("case", sorted(corpus.BAD_UPLOADS))
def test_bad_upload_is_refused_with_a_message(case):
    make, name, code, fragment = corpus.BAD_UPLOADS[case]
    with pytest.raises(InvalidUpload) as excinfo:
        read_photo(upload(make(), name))
    assert excinfo.value.code == code
    assert excinfo.value.field == "image"
    assert fragment in str(excinfo.value)


@pytest.mark.parametrize("case", sorted(corpus.GOOD_UPLOADS))
def test_supported_uploads_decode_to_rgb(case):
    make, name = corpus.GOOD_UPLOADS[case]
    photo = read_photo(upload(make(), name))
    assert photo.image.mode == "RGB"
    assert photo.query is photo.image and photo.box is None
    assert photo.stored_name is None


def test_animated_gif_uses_first_frame():
    photo = read_photo(upload(corpus.animated_gif(), "anim.gif"))
    assert photo.format == "GIF"
    assert photo.image.getpixel((10, 10)) == (255, 0, 0)


def test_cmyk_jpeg_becomes_rgb():
    photo = read_photo(upload(corpus.cmyk_jpeg(), "print.jpg"))
    r, g, b = photo.image.getpixel((5, 5))
    assert r > 200 and g < 60 and b < 60


def test_exif_rotation_is_applied_before_the_box():
    photo = read_photo(upload(corpus.exif_rotated_jpeg(), "phone.jpg"), box="0,0,20,40")
    assert photo.image.size == (20, 40)
    assert photo.query.size == (20, 40)
    # The stored (unrotated) width is 40: that box is outside the upright photo.
    with pytest.raises(InvalidUpload) as excinfo:
        read_photo(upload(corpus.exif_rotated_jpeg(), "phone.jpg"), box="0,0,40,20")
    assert excinfo.value.code == "box_outside"


@pytest.mark.parametrize("orientation", [1, 3, 6, 8, 2, 5])
@pytest.mark.parametrize("turn", [90, 180, 270])
def test_a_turn_is_applied_after_the_exif_orientation_and_before_the_box(orientation, turn):
    """The photo as the shopper saw it (EXIF applied), turned clockwise; the box is in
    the turned photo's pixels. Checked pixel for pixel against Pillow's own turns."""
    from PIL import ImageOps

    stored = corpus.noisy((40, 20))
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = corpus.encode(stored, "PNG", exif=exif.tobytes())
    shown = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    wanted = shown.rotate(-turn, expand=True)  # Pillow's rotate is anticlockwise
    photo = read_photo(upload(data, "phone.png"), turn=str(turn))
    assert photo.size == wanted.size and photo.image.tobytes() == wanted.tobytes()
    w, h = wanted.size
    part = read_photo(upload(data, "phone.png"), box=f"0,0,{w // 2},{h}", turn=turn)
    assert part.query.tobytes() == wanted.crop((0, 0, w // 2, h)).tobytes()


@pytest.mark.parametrize("turn", ["45", "-90", "360", "90.0", "١٨٠", "x"])
def test_a_turn_that_is_not_a_quarter_turn_is_refused(turn):
    with pytest.raises(InvalidUpload) as excinfo:
        read_photo(upload(corpus.png(), "photo.png"), turn=turn)
    assert excinfo.value.field == "turn" and excinfo.value.code == "invalid_turn"
    assert read_photo(upload(corpus.png(), "photo.png"), turn="").size == (64, 48)


def test_size_limit_comes_from_settings(settings):
    data = corpus.png()
    settings.VISUALSEARCH_MAX_UPLOAD_BYTES = len(data) - 1
    with pytest.raises(InvalidUpload) as excinfo:
        read_photo(upload(data))
    assert excinfo.value.code == "too_large"
    assert "accepted" in str(excinfo.value)
    settings.VISUALSEARCH_MAX_UPLOAD_BYTES = len(data)
    assert read_photo(upload(data)).image.size == (64, 48)


def test_size_limit_holds_for_files_without_a_size(settings):
    settings.VISUALSEARCH_MAX_UPLOAD_BYTES = 100
    with pytest.raises(InvalidUpload, match="accepted"):
        read_photo(io.BytesIO(corpus.png()))


def test_pixel_limit_comes_from_settings(settings):
    settings.VISUALSEARCH_MAX_PIXELS = 64 * 48 - 1
    with pytest.raises(InvalidUpload, match="64×48 pixels"):
        read_photo(upload(corpus.png()))


def test_format_allow_list_comes_from_settings(settings):
    settings.VISUALSEARCH_UPLOAD_FORMATS = ("JPEG",)
    with pytest.raises(InvalidUpload, match="PNG images are not supported"):
        read_photo(upload(corpus.png()))


@pytest.mark.parametrize(
    "box, expected",
    [
        ("", None),
        (None, None),
        ("1,2,30,40", (1, 2, 30, 40)),
        (" 1 , 2 , 30 , 40 ", (1, 2, 30, 40)),
        ("1.0,2,30,40", (1, 2, 30, 40)),
        ("0001,0002,00000030,40", (1, 2, 30, 40)),  # leading zeros, as the schema allows
        ([0, 0, 5, 5], (0, 0, 5, 5)),
    ],
)
def test_parse_box(box, expected):
    assert parse_box(box) == expected


@pytest.mark.parametrize(
    "box",
    [
        "1,2,3",
        "a,b,c,d",
        "1,2,3,4,5",
        "1.5,0,4,4",
        "nan,0,1,1",
        ",",
        "1e2,0,200,100",  # float() reads these; the schema's pattern does not
        "\uff11,0,100,100",
        "1_0,0,100,100",
        "1e300,0,1e301,1",
        "12345678,0,1,1",
    ],
)
def test_malformed_box_is_refused(box):
    with pytest.raises(InvalidUpload) as excinfo:
        parse_box(box)
    assert excinfo.value.field == "box" and excinfo.value.code == "invalid_box"


@pytest.mark.parametrize("box", ["0,0,65,48", "0,0,64,49", "-1,0,10,10", "10,10,5,5", "3,3,3,9"])
def test_box_outside_the_photo_is_refused(box):
    with pytest.raises(InvalidUpload) as excinfo:
        read_photo(upload(corpus.png()), box=box)
    assert excinfo.value.field == "box" and excinfo.value.code == "box_outside"
    assert "64×48 pixels" in str(excinfo.value)


def test_box_crops_the_query_but_keeps_the_whole_photo():
    photo = read_photo(upload(corpus.png()), box="10,5,30,25")
    assert photo.image.size == (64, 48)
    assert photo.query.size == (20, 20)
    assert photo.query.getpixel((0, 0)) == photo.image.getpixel((10, 5))


def test_uploads_are_stored_only_when_asked(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    read_photo(upload(corpus.png()))
    assert not (tmp_path / "media").exists()
    settings.VISUALSEARCH_STORE_UPLOADS = True
    photo = read_photo(upload(corpus.png()))
    assert photo.stored_name.startswith("visualsearch/uploads/")
    assert (tmp_path / "media" / photo.stored_name).read_bytes() == corpus.png()


def test_preview_is_a_small_jpeg_data_url(settings):
    image = Image.new("RGB", (3000, 1500), (0, 128, 0))
    url, width, height = preview_data_url(image)
    assert url.startswith("data:image/jpeg;base64,")
    assert (width, height) == (1024, 512)
    settings.VISUALSEARCH_PREVIEW_SIZE = 100
    assert preview_data_url(image)[1:] == (100, 50)
    assert preview_data_url(Image.new("RGB", (30, 20)))[1:] == (30, 20)


def test_mpo_photos_are_searched_as_jpeg_by_their_first_image():
    # Phones write the Multi-Picture extension (a second, smaller image); Pillow calls it MPO.
    first, second = Image.new("RGB", (64, 48), (255, 0, 0)), Image.new("RGB", (32, 24), "blue")
    buf = io.BytesIO()
    first.save(buf, "MPO", save_all=True, append_images=[second])
    photo = read_photo(upload(buf.getvalue(), "phone.jpg"))
    assert photo.format == "JPEG" and photo.query.size == (64, 48)
    r, g, b = photo.query.getpixel((32, 24))
    assert r > 240 and b < 15


def test_a_long_box_is_refused_before_it_is_parsed():
    box = "1" * 60 + ",0,5,5"  # four whole numbers, but 66 characters
    with pytest.raises(InvalidUpload) as excinfo:
        parse_box(box)
    assert excinfo.value.field == "box" and excinfo.value.code == "invalid_box"
    assert "too long" in str(excinfo.value)
    assert parse_box(" 0 , 0 , 5 , 5 ".ljust(MAX_BOX_LENGTH)) == (0, 0, 5, 5)


def test_a_large_photo_is_kept_only_as_large_as_the_search_needs():
    # 2000x3000 upright, stored landscape with EXIF orientation 6 (as phones do), with a red
    # square at the upright top right; the box selects it in full-size upright pixels.
    upright = Image.new("RGB", (2000, 3000), (0, 0, 255))
    upright.paste((255, 0, 0), (1500, 0, 2000, 500))
    exif = Image.Exif()
    exif[0x0112] = 6
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    data = corpus.encode(stored, "JPEG", quality=90, exif=exif.tobytes())
    photo = read_photo(upload(data, "phone.jpg"), box="1500,0,2000,500")
    assert photo.size == (2000, 3000) and photo.box == (1500, 0, 2000, 500)
    # The whole photo for the preview, halved: VISUALSEARCH_PREVIEW_SIZE needs no more.
    assert photo.image.size == (1000, 1500)
    assert photo.image.getpixel((800, 200))[0] > 240  # the red square, upright
    assert photo.query.size == (500, 500)  # the box at full size: WORKING_SIZE needs it
    r, g, b = photo.query.getpixel((250, 250))
    assert r > 240 and b < 15
    # A box more than twice what the encoder needs is reduced, keeping its shape.
    photo = read_photo(upload(data, "phone.jpg"), box="0,500,2000,2900")
    assert photo.query.size == (1000, 1200)
    r, g, b = photo.query.getpixel((500, 600))
    assert b > 240 and r < 15


def test_formats_that_decode_with_more_memory_are_held_to_fewer_pixels():
    # Pillow decodes WebP with 16 bytes a pixel, four times an RGB frame: a quarter of the
    # 40 MP allowed.
    data = corpus.encode(Image.new("RGB", (4000, 3000), (0, 90, 0)), "WEBP", lossless=True)
    with pytest.raises(InvalidUpload) as excinfo:
        read_photo(upload(data, "p.webp"))
    assert excinfo.value.code == "too_many_pixels"
    assert "4000×3000 pixels; WEBP photos up to 10 megapixels" in str(excinfo.value)
    assert read_photo(upload(corpus.encode(corpus.noisy(), "WEBP"), "p.webp")).size == (64, 48)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_peak_memory_of_a_hostile_photo_is_bounded():
    """The worst cases of ``bench/upload_memory.py``, each measured in a fresh process:
    they took 1.4 GB (float TIFF) and 0.6 GB (RGBA PNG) before decoding was bounded, about
    155 MB each since (one decoded frame of 36 MP, 4 bytes a pixel, and small copies)."""
    bench = Path(__file__).resolve().parents[2] / "bench" / "upload_memory.py"
    done = subprocess.run(
        [sys.executable, str(bench), "--cases", "float_tiff,rgba_png", "--paths", "upload"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    report = json.loads(done.stdout)
    for case in ("float_tiff", "rgba_png"):
        measured = report[case]["upload"]
        assert measured["result"] == "ok", (case, measured)
        assert measured["peak_growth_mb"] < 200, (case, measured)


# -- reading the request: never past the limit, never to a temporary file -----------------


class _Unreadable(io.RawIOBase):
    """A request body that fails the test if anything reads it."""

    def readable(self):
        return True

    def readinto(self, buffer):
        raise AssertionError("the request body was read")


def announced_too_large(client, url):
    """POST to ``url`` announcing 50 MB of multipart body that cannot be read."""
    return client.post(
        url,
        content_type=MULTIPART_CONTENT,
        CONTENT_LENGTH=str(50 * 2**20),
        **{"wsgi.input": _Unreadable()},
    )


@pytest.mark.django_db
def test_the_page_refuses_a_body_announced_too_large_without_reading_it(pixel_encoder):
    # The CSRF token is in the body, never read: the refusal cannot depend on it.
    client = Client(enforce_csrf_checks=True)
    response = announced_too_large(client, reverse("visualsearch:search_by_photo"))
    assert response.status_code == 400
    html = response.content.decode()
    assert "vs-upload-error" in html
    assert "The photo is 50.0\xa0MB; photos up to 10.0\xa0MB are accepted." in html


@pytest.mark.django_db
def test_the_page_refuses_two_photos_at_once_as_the_api_does(pixel_encoder):
    two = [upload(corpus.png(), "a.png"), upload(corpus.png(), "b.png")]
    response = Client().post(reverse("visualsearch:search_by_photo"), {"image": two})
    assert response.status_code == 400
    assert "Send one photo at a time." in response.content.decode()
    api = Client().post(
        "/api/search/image/", {"image": [upload(corpus.png()), upload(corpus.png())]}
    )
    assert api.status_code == 400


@pytest.mark.django_db
def test_the_page_refuses_a_large_body_of_another_kind_without_reading_it(pixel_encoder):
    """Upload handlers read multipart bodies only: a large urlencoded one is refused with
    the form's message too, not Django's bare "Bad Request"."""
    response = Client(enforce_csrf_checks=True).post(
        reverse("visualsearch:search_by_photo"),
        content_type="application/x-www-form-urlencoded",
        CONTENT_LENGTH=str(11 * 2**20),
        **{"wsgi.input": _Unreadable()},
    )
    assert response.status_code == 400
    assert "The form’s fields are too large" in response.content.decode() or (
        "The form&#x27;s fields are too large" in response.content.decode()
    )


@pytest.mark.django_db
def test_the_api_refuses_a_body_announced_too_large_without_reading_it(pixel_encoder):
    response = announced_too_large(Client(), "/api/search/image/")
    assert response.status_code == 400
    assert response.json() == {
        "image": ["The photo is 50.0\xa0MB; photos up to 10.0\xa0MB are accepted."]
    }


def test_a_body_larger_than_announced_is_read_only_up_to_the_limit(settings):
    settings.VISUALSEARCH_MAX_UPLOAD_BYTES = 100_000
    body = encode_multipart(BOUNDARY, {"box": "0,0,5,5", "image": upload(corpus.png((600, 600)))})
    stream = io.BytesIO(body)
    # Django's ASGI handler passes the body as received, whatever Content-Length said.
    meta = {"CONTENT_TYPE": MULTIPART_CONTENT, "CONTENT_LENGTH": "1000"}
    post, files = MultiPartParser(meta, stream, [PhotoUploadHandler()]).parse()
    refused = files["image"]
    assert isinstance(refused, TooLargeUpload) and 100_000 < refused.size < 200_000
    assert stream.tell() < 200_000 < len(body)  # stopped there, not read to the end
    with pytest.raises(InvalidUpload) as excinfo:
        read_photo(refused)
    assert excinfo.value.code == "too_large"


class RecordingUploadHandler(FileUploadHandler):
    """Stands for Django's default handlers (memory, then temporary files) in
    ``FILE_UPLOAD_HANDLERS``: the photo views must not use them."""

    created = []

    def __init__(self, request=None):
        super().__init__(request)
        self.created.append(request.path)

    def receive_data_chunk(self, raw_data, start):
        return raw_data

    def file_complete(self, file_size):
        return None


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/visual/photo/", "/api/search/image/"])
def test_photos_are_read_in_memory_never_to_a_temporary_file(client, pixel_encoder, settings, url):
    settings.FILE_UPLOAD_HANDLERS = [f"{__name__}.RecordingUploadHandler"]
    RecordingUploadHandler.created.clear()
    response = client.post(url, {"image": upload(corpus.png()), "box": "0,0,10,10"})
    assert response.status_code == 200
    assert RecordingUploadHandler.created == []


def _many_fields():
    return {**{f"f{i}": "x" for i in range(1100)}, "image": upload(corpus.png())}


def _large_field():
    return {"note": "x" * (3 * 2**20), "image": upload(corpus.png())}


def _many_files():
    return {"image": [upload(corpus.png(), name=f"p{i}.png") for i in range(101)]}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body, message",
    [
        (_many_fields, "The form has too many fields; send the photo and a box only."),
        (_large_field, "The form's fields are too large; send the photo and a box only."),
        (_many_files, "Send one photo at a time."),
        (
            b"--not-the-boundary\r\n\r\n",
            "The upload could not be read; please send the photo again.",
        ),
    ],
    ids=["many-fields", "large-field", "many-files", "malformed"],
)
def test_bodies_django_refuses_get_a_message_not_a_bare_400(pixel_encoder, body, message):
    """Django's parser refuses these before any form sees them; its bare "Bad Request
    (400)" page would be HTML even under the API."""
    kwargs = (
        # No boundary: the parts cannot be told apart.
        {"data": body, "content_type": "multipart/form-data"}
        if isinstance(body, bytes)
        else {"data": body()}
    )
    api = Client().post("/api/search/image/", **kwargs)
    assert api.status_code == 400 and api["Content-Type"] == "application/json"
    if isinstance(body, bytes):
        assert api.json()["detail"]  # DRF's own message for a malformed body
    else:
        assert api.json() == {"detail": message}
    page = Client().post(reverse("visualsearch:search_by_photo"), **kwargs)
    assert page.status_code == 400
    html = page.content.decode()
    assert "vs-upload-error" in html and message.replace("'", "&#x27;") in html


class _Interrupted(io.RawIOBase):
    """A body whose client went away mid-upload."""

    def readable(self):
        return True

    def readinto(self, buffer):
        raise OSError("Connection reset by peer")


@pytest.mark.django_db
def test_an_upload_the_client_abandons_is_a_400_not_a_500(pixel_encoder):
    response = Client().post(
        reverse("visualsearch:search_by_photo"),
        content_type=MULTIPART_CONTENT,
        CONTENT_LENGTH="5000",
        **{"wsgi.input": _Interrupted()},
    )
    assert response.status_code == 400
    assert response.content.decode() == "The upload was interrupted."


def test_costly_structures_are_counted_in_every_byte_order_and_cheaply():
    """TIFF's two byte orders and BigTIFF; a GIF of millions of blocks is refused too (the
    count stops at its limit)."""
    import struct

    from visualsearch.file_structure import MAX_TIFF_PARTS, costly_structure

    big_endian = b"MM\x00*" + struct.pack(">IH", 8, 1) + struct.pack(">HHII", 324, 4, 40_000, 26)
    bigtiff = (
        b"II+\x00" + struct.pack("<HHQ", 8, 0, 16) + struct.pack("<Q", 1)
        + struct.pack("<HHQQ", 273, 16, MAX_TIFF_PARTS + 1, 0)
    )  # fmt: skip
    assert costly_structure(big_endian) == ("strips", MAX_TIFF_PARTS)
    assert costly_structure(bigtiff) == ("strips", MAX_TIFF_PARTS)
    assert costly_structure(corpus.encode(corpus.noisy(), "TIFF")) is None
    assert costly_structure(b"II*\x00\xff\xff\xff\xff") is None  # unreadable: Pillow says so
    assert costly_structure(corpus.many_comment_blocks_gif(2_000_000))[0] == "blocks"
