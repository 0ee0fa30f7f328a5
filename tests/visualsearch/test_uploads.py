"""Upload validation (visualsearch.uploads) over the generated corpus; no database, no encoder."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from tests.visualsearch import corpus
from visualsearch.uploads import InvalidUpload, parse_box, preview_data_url, read_photo


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
    import io

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
        ([0, 0, 5, 5], (0, 0, 5, 5)),
    ],
)
def test_parse_box(box, expected):
    assert parse_box(box) == expected


@pytest.mark.parametrize("box", ["1,2,3", "a,b,c,d", "1,2,3,4,5", "1.5,0,4,4", "nan,0,1,1", ","])
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
