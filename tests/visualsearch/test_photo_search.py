"""Search by photo with localisation: the products in a photo are found, searched each and
fused, through the service, the API and the page."""

import io
import re

import numpy as np
import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image

from visualsearch import localisation, search, textures
from visualsearch.encoders import get_encoder
from visualsearch.imaging import open_image
from visualsearch.localisation import iou
from visualsearch.search.photo import shows_nothing

pytestmark = pytest.mark.django_db

IMAGE_URL = "/api/search/image/"


@pytest.fixture(autouse=True)
def _fresh_throttle_cache():
    cache.clear()


def two_product_photo(first, second, seed=0):
    """Two catalogue photos laid side by side on a striped surface, as a shopper would
    photograph them; returns the photo and where each product is."""
    rng = np.random.default_rng(seed)
    canvas = textures.texture((360, 180), rng, "stripes")
    boxes = []
    for x, product in ((30, first), (220, second)):
        with product.image.open("rb") as fh:
            picture = open_image(fh.read()).convert("RGB").resize((110, 110))
        canvas.paste(picture, (x, 35))
        boxes.append((x, 35, x + 110, 145))
    return canvas, boxes


@pytest.fixture
def tight_regions(monkeypatch):
    """Regions with the margin they had before it was widened for the shop's encoder: this
    suite's encoder sees 8x8 pixels, and in a crop with the shipped margin a third of them
    are the striped surface, which then outweighs the product's few."""
    monkeypatch.setattr(localisation, "MARGIN", 0.03)


def jpeg_upload(image):
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return SimpleUploadedFile("photo.png", buf.getvalue(), content_type="image/png")


def test_both_products_of_a_photo_are_found_searched_and_fused(catalogue, tight_regions):
    first, second = catalogue[4], catalogue[11]
    photo, boxes = two_product_photo(first, second)
    [found] = search.search_photos([photo], k=5)
    assert len(found.regions) == 2
    # Each region is where its product lies, and finds it (8x8 pixels tell apart only so
    # much: among its best two).
    regions = sorted(found.regions, key=lambda r: r.box[0])
    for region, box, product in zip(regions, boxes, (first, second), strict=True):
        assert iou(region.box, box) > 0.6
        assert product.pk in [h.product_id for h in region.hits[:2]]
    # The fused list starts with each region's best match, so both products show.
    tops = {region.hits[0].product_id for region in regions}
    assert {h.product_id for h in found.hits[:2]} == tops
    assert {first.pk, second.pk} <= {h.product_id for h in found.hits}
    rest = [h.score for h in found.hits[2:]]
    assert rest == sorted(rest, reverse=True)
    # Searched whole only, the photo is mostly stripes and finds neither first.
    [whole] = search.search_photos([photo], k=5, localise=False)
    assert whole.regions == []
    assert search.search_by_images([photo], k=5)[0] == found.hits


def test_the_whole_photo_still_answers_when_regions_find_worse(catalogue):
    """The test catalogue's photos are two patches on black: the localiser may take one
    patch for a product, but the whole photo matches its own product exactly, and fusion
    keeps the better answer."""
    for target in catalogue[:6]:
        with target.image.open("rb") as fh:
            photo = open_image(fh.read())
        [found] = search.search_photos([photo], k=3)
        assert found.hits[0].product_id == target.pk
        assert found.hits[0].score == pytest.approx(1.0, abs=1e-4)


def test_api_returns_the_regions_with_their_results(client, catalogue, tight_regions):
    first, second = catalogue[4], catalogue[11]
    photo, _boxes = two_product_photo(first, second)
    response = client.post(IMAGE_URL, {"image": jpeg_upload(photo), "k": 4})
    assert response.status_code == 200
    body = response.json()
    assert len(body["results"]) == 4 and len(body["regions"]) == 2
    for region in body["regions"]:
        x0, y0, x1, y1 = region["box"]
        assert 0 <= x0 < x1 <= photo.width and 0 <= y0 < y1 <= photo.height
        assert len(region["results"]) == 4
    found = {r["id"] for region in body["regions"] for r in region["results"][:2]}
    assert {first.pk, second.pk} <= found
    # A region's box sent back searches that product alone, and nothing is localised.
    box = body["regions"][0]["box"]
    again = client.post(
        IMAGE_URL,
        {"image": jpeg_upload(photo), "k": 4, "box": ",".join(map(str, box))},
    ).json()
    assert again["regions"] == []
    assert again["results"][0]["id"] == body["regions"][0]["results"][0]["id"]


def test_api_regions_hold_their_products_with_the_shipped_margin(client, catalogue):
    """With the margin shipped, each region returned holds its product and some surface
    around it, and sent back as a box it searches exactly what the region searched."""
    photo, boxes = two_product_photo(catalogue[4], catalogue[11])
    body = client.post(IMAGE_URL, {"image": jpeg_upload(photo), "k": 4}).json()
    regions = sorted(body["regions"], key=lambda r: r["box"][0])
    assert len(regions) == 2
    for region, (x0, y0, x1, y1) in zip(regions, boxes, strict=True):
        rx0, ry0, rx1, ry1 = region["box"]
        assert rx0 <= x0 + 3 and ry0 <= y0 + 3 and rx1 >= x1 - 3 and ry1 >= y1 - 3
        assert (rx1 - rx0) * (ry1 - ry0) > 1.4 * (x1 - x0) * (y1 - y0)  # and its surroundings
        again = client.post(
            IMAGE_URL,
            {"image": jpeg_upload(photo), "k": 4, "box": ",".join(map(str, region["box"]))},
        ).json()
        assert [r["id"] for r in again["results"]] == [r["id"] for r in region["results"]]


def test_photo_page_offers_the_products_found_as_boxes(client, catalogue):
    photo, _boxes = two_product_photo(catalogue[4], catalogue[11])
    response = client.post(reverse("visualsearch:search_by_photo"), {"image": jpeg_upload(photo)})
    assert response.status_code == 200
    html = response.content.decode()
    assert "2 products found in your photo" in html
    assert html.count('class="vs-region"') == 2
    assert 'name="scope" value="region"' in html and "Search product 2" in html
    # Each button says where its product is, for a shopper who cannot see the boxes.
    names = re.findall(r"Search product \d \((\w+)\)</button>", html)
    assert sorted(names) == ["left", "right"]
    picks = response.context["regions"]
    for pick in picks:
        x0, y0, x1, y1 = map(int, pick["box"].split(","))
        assert 0 <= x0 < x1 <= response.context["preview_width"]
        assert 0 <= y0 < y1 <= response.context["preview_height"]


def test_photo_page_shows_no_boxes_for_one_product(client, catalogue):
    target = catalogue[5]
    with target.image.open("rb") as fh:
        data = fh.read()
    upload = SimpleUploadedFile("p.png", data, content_type="image/png")
    response = client.post(reverse("visualsearch:search_by_photo"), {"image": upload})
    assert response.status_code == 200
    assert (
        response.context["regions"] == [] and 'class="vs-region"' not in response.content.decode()
    )


def test_projection_pairs_photograph_each_product_as_standard_and_a_harder_kind(
    catalogue, settings, tmp_path
):
    """The whitening learns from two shopper photos per drawn product: one standard, one of
    the harder kinds, seen through the view photo search would match it with."""
    from tests.visualsearch.conftest import ENCODERS
    from visualsearch.indexing.projection import _shopper_photo_pairs

    settings.VISUALSEARCH_ENCODERS = {
        **ENCODERS,
        "pixelproj": "tests.visualsearch.encoders.ProjectedPixelEncoder",
    }
    settings.VISUALSEARCH_ARTIFACT_DIR = tmp_path
    enc = get_encoder("pixelproj")
    pks = [p.pk for p in catalogue]
    raw = enc.embed([open_image(p.image.read()) for p in catalogue])
    done = []
    pairs = _shopper_photo_pairs(enc, pks, raw, 14, 0, 5, done.append)
    anchors, views = pairs["pairs"]
    assert len(pairs["pair_ids"]) == 14 and len(set(pairs["pair_ids"])) == 14
    assert anchors.shape == views.shape == (28, enc.dim)
    # Rows come in twos, both photos of the same product against its catalogue vector.
    assert np.array_equal(anchors[0::2], anchors[1::2])
    assert done[-1] == 14
    # The same seed makes the same photos.
    again = _shopper_photo_pairs(enc, pks, raw, 14, 0, 5, lambda n: None)
    np.testing.assert_array_equal(again["pairs"][1], views)


class FixedPrior:
    """A projection whose classifier says the same of every view: ``log_p`` per label."""

    category_prior = True

    def __init__(self, labels, log_p):
        self.category_labels = tuple(str(label) for label in labels)
        self.log_p = np.asarray(log_p, dtype=np.float64)

    def category_log_probabilities(self, vectors):
        return np.tile(self.log_p, (len(vectors), 1))


def test_the_category_prior_lowers_other_categories_but_not_a_close_match(catalogue, settings):
    from visualsearch.search.photo import _with_category_prior

    settings.VISUALSEARCH_CATEGORY_PRIOR = 0.1
    settings.VISUALSEARCH_CATEGORY_PRIOR_MARGIN = 0.05
    likely, unlikely = catalogue[0].category_id, catalogue[1].category_id
    prior = FixedPrior([likely, unlikely], np.log([0.8, 0.2]))
    candidates = [catalogue[i].pk for i in (1, 4, 0, 2, 7, 10)]
    # Categories: unlikely, unlikely, likely, unknown to the classifier, unlikely, unlikely.
    scores = np.array(
        [[0.90, 0.70, 0.60, 0.65, 0.87, 0.84], [0.50, 0.55, 0.80, 0.40, 0.76, 0.74]],
        dtype=np.float32,
    )
    views = np.zeros((2, 8), dtype=np.float32)
    out = _with_category_prior(scores, views, candidates, prior)
    penalty = 0.1 * np.log(0.2 / 0.8)  # against the most likely category, never a gain
    expected = scores.astype(np.float64).copy()
    for row, column in ((0, 1), (0, 5), (1, 0), (1, 1), (1, 5)):
        expected[row, column] += penalty
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    # Kept: each view's best (0.90, 0.80), those within 0.05 of it (0.87, 0.76), the likely
    # category's product and the one of an unknown category.
    assert out[0, 0] == scores[0, 0] and out[0, 4] == scores[0, 4] and out[1, 4] == scores[1, 4]
    assert (out[:, 2] == scores[:, 2]).all() and (out[:, 3] == scores[:, 3]).all()
    assert out[0, 5] < scores[0, 5]  # 0.06 below the best: outside the margin
    settings.VISUALSEARCH_CATEGORY_PRIOR = 0
    assert _with_category_prior(scores, views, candidates, prior) is scores


@pytest.mark.parametrize("value", [None, "0.1", -0.5, float("nan"), True])
def test_a_category_prior_that_is_no_weight_fails_the_system_check(settings, value):
    from visualsearch.checks import check_photo_search_settings

    settings.VISUALSEARCH_CATEGORY_PRIOR = value
    errors = check_photo_search_settings(None)
    assert [e.id for e in errors] == ["visualsearch.E011"]
    assert "VISUALSEARCH_CATEGORY_PRIOR must be a number" in errors[0].msg
    settings.VISUALSEARCH_CATEGORY_PRIOR = 0.02
    settings.VISUALSEARCH_CATEGORY_PRIOR_MARGIN = 0
    assert check_photo_search_settings(None) == []


def test_candidates_categories_are_read_once_until_the_catalogue_changes(catalogue, monkeypatch):
    from visualsearch import products

    asked = []
    real = products.main_categories
    monkeypatch.setattr(products, "main_categories", lambda pks: asked.append(pks) or real(pks))
    kept = products.KeptCategories()
    pks = [p.pk for p in catalogue[:6]]
    assert kept.get(pks) == {p.pk: p.category_id for p in catalogue[:6]}
    assert kept.get(pks[:3] + [catalogue[6].pk]) == {
        p.pk: p.category_id for p in catalogue[:3] + [catalogue[6]]
    }
    assert asked == [pks, [catalogue[6].pk]]  # only the product not asked about before
    # Saving a product moves the catalogue's stamp: every category is read again.
    moved = catalogue[0]
    moved.category = catalogue[1].category
    moved.save()
    assert kept.get(pks)[moved.pk] == catalogue[1].category_id
    assert asked[-1] == pks
    # Past the limit the copies are dropped, never grown.
    small = products.KeptCategories(limit=4)
    small.get(pks[:3])
    assert small.get(pks[3:6]) == {p.pk: p.category_id for p in catalogue[3:6]}
    assert len(small.store._values) == 3


def test_a_region_that_matches_nothing_well_does_not_go_first():
    """A region's best match leads the fused list only when it scores near the photo's
    best: a fragment of one product (its heel, its sole) found no product of its own."""
    from visualsearch.search.photo import REGION_TOP_MARGIN, _fuse

    products = [10, 11, 12, 13]
    # Views: the whole photo, then two regions; columns: the candidates.
    scores = np.array(
        [
            [0.81, 0.20, 0.10, 0.30],  # the whole photo finds product 10
            [0.70, 0.76, 0.10, 0.20],  # a second product, nearly as close: it goes first
            [0.30, 0.10, 0.81 - REGION_TOP_MARGIN - 0.05, 0.20],  # a fragment: it does not
        ],
        dtype=np.float32,
    )
    # The second product's region leads; the fragment's weak match keeps its rank.
    assert [h.product_id for h in _fuse(scores, products, 4, keep_tops=True)] == [11, 10, 12, 13]
    scores[2, 2] = 0.81 - REGION_TOP_MARGIN + 0.05  # within the margin: it leads too
    assert [h.product_id for h in _fuse(scores, products, 4, keep_tops=True)][:2] == [11, 12]


# -- no close match ------------------------------------------------------------------------


@pytest.fixture
def reranked(settings, tmp_path, product_factory, category_factory):
    """A catalogue searched with a fitted projection that re-ranks photo search (the scale
    ``CLOSE_MATCH_SCORE`` is read on), and one product's own photo as a query."""
    from tests.visualsearch.conftest import ENCODERS, catalogue_image
    from visualsearch import indexing

    settings.VISUALSEARCH_ENCODERS = {
        **ENCODERS,
        "pixelproj": "tests.visualsearch.encoders.ProjectedPixelEncoder",
    }
    settings.VISUALSEARCH_ENCODER = "pixelproj"
    settings.VISUALSEARCH_ARTIFACT_DIR = tmp_path
    cats = [category_factory(name=f"Kind {c}", slug=f"kind-{c}") for c in range(3)]
    products = [product_factory(category=cats[i % 3], image=catalogue_image(i)) for i in range(12)]
    indexing.reindex_with_projection(pairs=7)
    assert get_encoder("pixelproj").projection.reranks
    with products[5].image.open("rb") as fh:
        photo = open_image(fh.read()).convert("RGB")
    [found] = search.search_photos([photo], k=5)
    return photo, found.hits[0].score


def test_a_photo_is_told_when_nothing_looks_much_like_it(client, reranked, settings):
    photo, best = reranked
    upload = {"image": lambda: jpeg_upload(photo)}
    for threshold, close in ((best - 0.01, True), (best + 0.01, False), (None, None)):
        settings.VISUALSEARCH_CLOSE_MATCH_SCORE = threshold
        [found] = search.search_photos([photo], k=5)
        assert found.close_match is close
        body = client.post(IMAGE_URL, {"image": upload["image"]()}).json()
        assert body["close_match"] is close and body["results"]
        page = client.post(reverse("visualsearch:search_by_photo"), {"image": upload["image"]()})
        html = page.content.decode()
        assert ('id="no-close-match"' in html) is (close is False)
        assert ("nearest products" in html) is (close is False)
        assert 'class="card"' in html  # the nearest products are shown all the same


def test_a_photo_of_nothing_is_never_a_close_match(client, reranked, settings):
    """A black or white screen, or grey sensor noise, still has nearest products (the
    demo's black photo scored above the threshold), but is never called a close match; a
    product's photo with its flat backdrop is not blank."""
    photo, best = reranked
    settings.VISUALSEARCH_CLOSE_MATCH_SCORE = -1.0  # every real score passes
    noise = np.random.default_rng(0).normal(128, 3, (200, 200, 3)).clip(0, 255)
    blanks = [
        Image.new("RGB", (300, 200)),
        Image.new("RGB", (64, 64), (255, 255, 255)),
        Image.fromarray(noise.astype(np.uint8)),
    ]
    assert all(shows_nothing(b) for b in blanks) and not shows_nothing(photo)
    found = search.search_photos([photo, *blanks], k=5)
    assert found[0].close_match is True
    assert all(f.hits and f.close_match is False for f in found[1:])
    body = client.post(IMAGE_URL, {"image": jpeg_upload(blanks[0])}).json()
    assert body["close_match"] is False and body["results"]


def test_without_re_ranking_a_photo_cannot_be_told_close_or_not(client, catalogue, settings):
    settings.VISUALSEARCH_CLOSE_MATCH_SCORE = 0.0  # any score would pass, were it comparable
    with catalogue[3].image.open("rb") as fh:
        photo = open_image(fh.read()).convert("RGB")
    [found] = search.search_photos([photo], k=5)
    assert found.hits and found.close_match is None
    assert client.post(IMAGE_URL, {"image": jpeg_upload(photo)}).json()["close_match"] is None


@pytest.mark.parametrize("value", ["0.2", True, [0.2]])
def test_a_close_match_score_that_is_no_number_fails_the_system_check(settings, value):
    from visualsearch.checks import check_photo_search_settings

    settings.VISUALSEARCH_CLOSE_MATCH_SCORE = value
    assert [e.id for e in check_photo_search_settings(None)] == ["visualsearch.E012"]
    settings.VISUALSEARCH_CLOSE_MATCH_SCORE = None
    assert check_photo_search_settings(None) == []


def test_the_threshold_is_measured_on_the_shops_own_catalogue(reranked):
    import json

    from django.core.management import call_command

    out = io.StringIO()
    call_command("calibrate_close_match", "--photos", "3", "--json", stdout=out)
    report = json.loads(out.getvalue())
    assert set(report["product_photos"]) >= {"standard", "textured", "two_products"}
    assert report["product_photos"]["standard"]["n"] == 3
    assert set(report["photos_of_no_product"]) == {
        "texture",
        "plain",
        "gradient",
        "noise",
        "hand_or_bag",
    }
    shares = [row["product_photos"] for row in report["share_below"].values()]
    assert shares == sorted(shares) and 0 <= shares[0] <= shares[-1] <= 1
    # Plain-colour photos show nothing, which the shop tells whatever they score.
    assert report["photos_of_no_product"]["plain"] == {"n": 3, "always_told": 3}
    assert all(row["photos_of_no_product"] >= 0.2 for row in report["share_below"].values())
    if report["suggested"] is not None:
        assert report["share_below"][str(report["suggested"])]["product_photos"] <= 0.02
    text = io.StringIO()
    call_command("calibrate_close_match", "--photos", "2", stdout=text)
    assert "threshold" in text.getvalue() and "VISUALSEARCH_CLOSE_MATCH_SCORE" in text.getvalue()


def test_without_re_ranking_there_is_nothing_to_calibrate(catalogue):
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="fit-projection"):
        call_command("calibrate_close_match", "--photos", "2", stdout=io.StringIO())
    with pytest.raises(CommandError, match="between 1 and 1000"):
        call_command("calibrate_close_match", "--photos", "0", stdout=io.StringIO())
