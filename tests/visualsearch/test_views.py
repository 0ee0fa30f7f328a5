"""The "Find similar" and "Search by photo" pages, with the cheap pixel encoder."""

import re
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import translation

from recommendations.models import Event
from tests.visualsearch import corpus

pytestmark = pytest.mark.django_db

PHOTO_URL = reverse("visualsearch:search_by_photo")


def similar_url(product, **params):
    from urllib.parse import urlencode

    url = reverse("visualsearch:similar", args=[product.pk])
    return f"{url}?{urlencode(params)}" if params else url


def card_ids(response):
    return [int(pk) for pk in re.findall(r'data-product-id="(\d+)"', response.content.decode())]


def photo_upload(data, name="photo.png"):
    return SimpleUploadedFile(name, data, content_type="image/png")


def product_image_bytes(product):
    with product.image.open("rb") as fh:
        return fh.read()


# -- Find similar ---------------------------------------------------------------------------


def test_similar_page_lists_the_most_similar_products(client, catalogue):
    product = catalogue[0]
    response = client.get(similar_url(product))
    assert response.status_code == 200
    html = response.content.decode()
    assert product.title in html and product.image.url in html
    ids = card_ids(response)
    assert len(ids) == 12
    assert product.pk not in ids
    first = next(p for p in catalogue if p.pk == ids[0])
    assert f'href="{first.get_absolute_url()}?from=similar"' in html
    # Cards come best first; their scores are data for scripts, not text for shoppers.
    scores = [float(s) for s in re.findall(r'data-score="([0-9.\-]+)"', html)]
    assert len(scores) == 12 and scores == sorted(scores, reverse=True)
    assert "similarity 0" not in html


def test_the_similar_page_writes_prices_as_its_cards_do(client, catalogue):
    product = catalogue[0]
    type(product).objects.filter(pk=product.pk).update(price=Decimal("20"))
    html = client.get(similar_url(product)).content.decode()
    head = html.split('class="vs-head"', 1)[1].split("</div>", 1)[0]
    # The header writes it through lookalike/price.html, which the shop overrides to write
    # prices as its cards do.
    assert "€20.00" in head and "EUR" not in head
    cards = re.findall(r'class="price">([^<]+)<', html)
    assert len(cards) == 12 and all(re.fullmatch(r"€\d+\.\d\d", c) for c in cards)


def test_the_plugins_write_prices_through_one_template(catalogue):
    """The plugin's own price template writes the amount with two decimals, then the
    currency's code; the plugin's card writes its price through whichever price template
    the project resolves (here the shop's override)."""
    from pathlib import Path

    from django.template import Context, engines
    from django.template.loader import render_to_string

    import lookalike

    source = Path(lookalike.__file__).parent / "templates" / "lookalike" / "price.html"
    plugin = engines["django"].engine.from_string(source.read_text())
    assert plugin.render(Context({"price": Decimal("20"), "currency": "EUR"})).strip() == (
        "20.00 EUR"
    )
    assert plugin.render(Context({"price": Decimal("7.5"), "currency": ""})).strip() == "7.50"
    product = catalogue[0]
    type(product).objects.filter(pk=product.pk).update(price=Decimal("20"))
    product.refresh_from_db()
    context = {"product": product, "source": "", "score": None, "reason": ""}
    card = render_to_string("lookalike/product_card.html", context)
    assert 'lookalike-card-price">€20.00<' in card and "data-score" not in card
    # A similarity is for the shop's scripts, not a figure shown to the shopper; never
    # written with a decimal comma, whatever the language.
    with translation.override("de"):
        card = render_to_string("lookalike/product_card.html", {**context, "score": 0.56249})
    assert 'data-score="0.562"' in card and "similarity" not in card and "0,562" not in card


def test_similar_links_record_a_similar_click(client, catalogue):
    client.get(catalogue[0].get_absolute_url())  # a new browser's first page starts its session
    page = similar_url(catalogue[0])
    response = client.get(page)
    target = re.search(r'href="([^"]+\?from=similar)"', response.content.decode()).group(1)
    assert client.get(target, HTTP_REFERER=f"http://testserver{page}").status_code == 200
    assert Event.objects.filter(kind="similar_click", source="similar").count() == 1


def test_similar_filters(client, catalogue):
    product = catalogue[0]
    same = client.get(similar_url(product, same_category="on"))
    assert same.status_code == 200
    ids = card_ids(same)
    assert ids and all(p.category_id == product.category_id for p in catalogue if p.pk in ids)

    cheap = client.get(similar_url(product, max_price="15"))
    assert {p.pk for p in catalogue if p.price <= Decimal("15")} >= set(card_ids(cheap))
    assert card_ids(cheap)

    in_stock = client.get(similar_url(product, in_stock="on", min_price="0"))
    assert card_ids(in_stock)
    assert all(p.stock > 0 for p in catalogue if p.pk in card_ids(in_stock))
    assert 'name="in_stock" id="id_in_stock" checked' in in_stock.content.decode()


def test_similar_filters_that_match_nothing_say_so(client, catalogue):
    response = client.get(similar_url(catalogue[0], min_price="9000"))
    assert response.status_code == 200
    assert card_ids(response) == []
    assert "No similar products match these filters" in response.content.decode()


def test_another_spelling_of_the_key_redirects_to_the_canonical_page(client, catalogue):
    pk = catalogue[0].pk
    response = client.get(f"/visual/similar/0{pk}/", {"in_stock": "1"})
    assert response.status_code == 301
    assert response["Location"] == f"/visual/similar/{pk}/?in_stock=1"
    assert client.get(response["Location"]).status_code == 200
    assert client.get("/visual/similar/abc/").status_code == 404


def test_clear_is_offered_only_where_a_filter_is_in_effect_or_refused(client, catalogue):
    pk = catalogue[0].pk
    clear = f'href="/visual/similar/{pk}/">Clear</a>'
    assert clear not in client.get(similar_url(catalogue[0], in_stock="false")).content.decode()
    assert clear in client.get(similar_url(catalogue[0], in_stock="on")).content.decode()
    assert clear in client.get(similar_url(catalogue[0], min_price="cheap")).content.decode()


def test_invalid_filters_are_a_400_with_a_message(client, catalogue):
    response = client.get(similar_url(catalogue[0], min_price="50", max_price="10"))
    assert response.status_code == 400
    html = response.content.decode()
    assert "minimum price is above the maximum price" in html
    # Linked to the maximum's input, which is marked invalid.
    field = re.search(r'<input[^>]*name="max_price"[^>]*>', html).group(0)
    assert 'aria-invalid="true"' in field and 'aria-describedby="id_max_price_error"' in field
    assert 'id="id_max_price_error"' in html
    response = client.get(similar_url(catalogue[0], min_price="cheap"))
    assert response.status_code == 400
    html = response.content.decode()
    assert "Enter a number" in html
    # The field points at its message, and the message is there under that id.
    field = re.search(r'<input[^>]*name="min_price"[^>]*>', html).group(0)
    assert 'aria-invalid="true"' in field and 'aria-describedby="id_min_price_error"' in field
    assert re.search(r'id="id_min_price_error"[^>]*>.*Enter a number', html)


def test_product_not_indexed_yet_is_a_friendly_message(client, pixel_encoder, product_factory):
    product = product_factory()
    response = client.get(similar_url(product))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="not-indexed"' in html and "not been analysed yet" in html
    assert card_ids(response) == []


def test_a_product_without_a_photo_is_not_promised_look_alikes_later(
    client, pixel_encoder, product_factory
):
    html = client.get(similar_url(product_factory(image=""))).content.decode()
    assert 'data-reason="no_image"' in html and "has no photo yet" in html
    assert "try again" not in html


def test_unknown_or_inactive_product_is_404(client, catalogue, product_factory):
    assert client.get(reverse("visualsearch:similar", args=[999999])).status_code == 404
    hidden = product_factory(is_active=False)
    assert client.get(similar_url(hidden)).status_code == 404


# -- Search by photo ------------------------------------------------------------------------


def test_photo_page_shows_the_upload_form(client, pixel_encoder):
    response = client.get(PHOTO_URL)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'type="file" name="image"' in html and 'enctype="multipart/form-data"' in html


def test_photo_search_finds_the_product_and_offers_a_crop(client, catalogue, tmp_path):
    target = catalogue[5]
    response = client.post(PHOTO_URL, {"image": photo_upload(product_image_bytes(target))})
    assert response.status_code == 200
    ids = card_ids(response)
    assert ids[0] == target.pk and len(ids) == 12
    html = response.content.decode()
    assert "?from=photo" in html
    # The photo comes back inline, ready for the crop box; nothing is written to storage.
    assert 'src="data:image/jpeg;base64,' in html
    assert html.count("data:image/jpeg;base64,") == 1  # the preview is in the page once
    assert 'id="vs-crop"' in html and "visualsearch/crop.js" in html
    assert not (tmp_path / "media" / "visualsearch").exists()


def test_photo_search_renders_its_cards_and_keeps_none(client, catalogue, settings):
    from lookalike.cards import CARDS, SCORED_CARDS

    CARDS.clear()
    SCORED_CARDS.clear()
    response = client.post(PHOTO_URL, {"image": photo_upload(product_image_bytes(catalogue[5]))})
    assert response.status_code == 200
    cards = [t for t in response.templates if t.name == settings.LOOKALIKE_CARD_TEMPLATE]
    assert len(cards) == 12
    # A photo's scores are its own: never shown again.
    assert CARDS._values == {} and SCORED_CARDS._values == {}


def test_photo_search_refuses_a_category_no_category_has(client, catalogue):
    """As the API does (tests/visualsearch/test_api.py): a 400 with the field's message."""
    upload = photo_upload(product_image_bytes(catalogue[5]))
    response = client.post(PHOTO_URL, {"image": upload, "category": 999999})
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()


def test_photo_search_with_a_box_and_filters(client, catalogue):
    target = catalogue[5]
    response = client.post(
        PHOTO_URL,
        {
            "image": photo_upload(product_image_bytes(target)),
            "box": "0,0,16,16",
            "category": target.category_id,
            "in_stock": "on",
        },
    )
    assert response.status_code == 200
    ids = card_ids(response)
    assert ids
    by_pk = {p.pk: p for p in catalogue}
    assert all(by_pk[pk].category_id == target.category_id for pk in ids)
    assert all(by_pk[pk].stock > 0 for pk in ids)
    html = response.content.decode()
    assert "for the selected area" in html
    # The current selection is drawn on the preview (same size here: no scaling).
    assert 'data-box="0,0,16,16"' in html


@pytest.mark.parametrize("case", sorted(corpus.BAD_UPLOADS))
def test_bad_uploads_are_a_400_with_a_message(client, pixel_encoder, case):
    make, name, _code, fragment = corpus.BAD_UPLOADS[case]
    response = client.post(PHOTO_URL, {"image": SimpleUploadedFile(name, make())})
    assert response.status_code == 400
    html = response.content.decode()
    assert "vs-upload-error" in html
    photo_input = re.search(r'<input type="file" name="image"[^>]*>', html).group(0)
    assert 'aria-describedby="vs-upload-errors"' in photo_input and 'id="vs-upload-errors"' in html
    # Both the field message and the Django escaping of "×" must keep the fragment readable.
    assert fragment in html.replace("&#x27;", "'")


@pytest.mark.parametrize(
    "box, fragment",
    [("0,0,65,10", "is not a rectangle inside the photo (64×48 pixels)"), ("1,2", "four whole")],
)
def test_bad_box_is_a_400_with_a_message(client, pixel_encoder, box, fragment):
    response = client.post(PHOTO_URL, {"image": photo_upload(corpus.png()), "box": box})
    assert response.status_code == 400
    assert fragment in response.content.decode()


def test_missing_photo_and_size_limit_are_400(client, pixel_encoder, settings):
    response = client.post(PHOTO_URL, {})
    assert response.status_code == 400
    assert "Please choose a photo" in response.content.decode()
    settings.VISUALSEARCH_MAX_UPLOAD_BYTES = 1000
    response = client.post(PHOTO_URL, {"image": photo_upload(corpus.png())})
    assert response.status_code == 400
    assert "photos up to 1000" in response.content.decode()


@pytest.mark.parametrize("case", ["animated_gif", "cmyk_jpeg", "exif_rotated", "webp", "tiff"])
def test_awkward_but_valid_photos_are_searched(client, catalogue, case):
    make, name = corpus.GOOD_UPLOADS[case]
    response = client.post(PHOTO_URL, {"image": SimpleUploadedFile(name, make())})
    assert response.status_code == 200
    assert len(card_ids(response)) == 12


def test_exif_rotated_photo_is_shown_upright(client, catalogue):
    make, name = corpus.GOOD_UPLOADS["exif_rotated"]
    response = client.post(PHOTO_URL, {"image": SimpleUploadedFile(name, make())})
    html = response.content.decode()
    assert 'data-width="20" data-height="40"' in html


def test_a_photo_on_its_side_is_turned_and_found(client, catalogue):
    """A photo saved a quarter turn anticlockwise (no EXIF to say so) is searched turned
    back: the product first, and the preview shown the right way up (its sides swapped)."""
    import io

    from PIL import Image

    from tests.visualsearch import corpus

    target = catalogue[5]
    upright = Image.open(io.BytesIO(product_image_bytes(target))).convert("RGB")
    buf = io.BytesIO()
    upright.rotate(90, expand=True).save(buf, format="PNG")
    as_sent = client.post(PHOTO_URL, {"image": photo_upload(buf.getvalue())})
    assert as_sent.status_code == 200 and "Turn right" in as_sent.content.decode()
    turned = client.post(PHOTO_URL, {"image": photo_upload(buf.getvalue()), "turn": "90"})
    assert card_ids(turned)[0] == target.pk
    wide = corpus.png((64, 48))
    html = client.post(PHOTO_URL, {"image": photo_upload(wide), "turn": "270"}).content.decode()
    assert 'data-width="48" data-height="64"' in html
    refused = client.post(PHOTO_URL, {"image": photo_upload(wide), "turn": "45"})
    assert refused.status_code == 400 and "90, 180 or 270 degrees" in refused.content.decode()


def test_products_found_before_a_pick_are_offered_again(client, catalogue):
    """Searching one product's box finds no regions; the boxes the page sends back are
    shown again (the one searched pressed), and what does not parse or lies outside the
    photo is dropped, never an error."""
    from tests.visualsearch import corpus

    photo = photo_upload(corpus.png((64, 48)))
    kept = "0,0,30,48;34,0,64,48;abc;0,0,64,4800;" + "9" * 300
    html = client.post(
        PHOTO_URL, {"image": photo, "box": "34,0,64,48", "regions": kept[:400]}
    ).content.decode()
    assert html.count('class="btn secondary vs-region-pick"') == 2
    assert 'data-box="34,0,64,48" data-region="vs-region-2" aria-pressed="true"' in html
    assert 'data-box="0,0,30,48" data-region="vs-region-1" aria-pressed="false"' in html
    # One box alone is no choice to offer.
    photo = photo_upload(corpus.png((64, 48)))
    html = client.post(PHOTO_URL, {"image": photo, "box": "0,0,30,48", "regions": "0,0,30,48"})
    assert "vs-region-pick" not in html.content.decode()


def test_a_search_from_the_results_page_refused_keeps_the_photo(client, catalogue):
    """A minimum price above the maximum, or an area outside the photo, sent from the
    results page: the photo stays, with the errors, not the empty upload form."""
    from tests.visualsearch import corpus

    for fields, message in (
        ({"min_price": "100", "max_price": "10"}, "above the maximum"),
        ({"box": "0,0,640,480"}, "not a rectangle inside the photo"),
    ):
        photo = photo_upload(corpus.png((64, 48)))
        response = client.post(PHOTO_URL, {"image": photo, "refined": "1", **fields})
        html = response.content.decode()
        assert response.status_code == 400 and message in html
        assert 'id="vs-crop"' in html and 'src="data:image/jpeg;base64,' in html
        assert "Nothing was searched" in html and not card_ids(response)
    # A first upload refused the same way is the upload form, as before.
    photo = photo_upload(corpus.png((64, 48)))
    response = client.post(PHOTO_URL, {"image": photo, "box": "0,0,640,480"})
    assert response.status_code == 400 and 'id="vs-crop"' not in response.content.decode()


def test_after_a_turn_the_focus_stays_on_its_button_which_says_so(client, catalogue):
    from tests.visualsearch import corpus

    photo = photo_upload(corpus.png((64, 48)))
    html = client.post(PHOTO_URL, {"image": photo, "turn": "90", "refined": "1"}).content.decode()
    assert 'data-turn="90" autofocus aria-describedby="vs-turned"' in html
    assert "Turned a quarter turn right." in html
    assert 'id="vs-results-heading" tabindex="-1" autofocus' not in html
    photo = photo_upload(corpus.png((64, 48)))
    html = client.post(PHOTO_URL, {"image": photo, "turn": "", "refined": "1"}).content.decode()
    assert 'id="vs-results-heading" tabindex="-1" autofocus' in html and "vs-turned" not in html
