"""What makes search by photo robust and category-aware: framing on the product in the
encoders' preprocessing, the fast batch normalisation, and the catalogue projection fitted
by ``reindex --fit-projection``."""

import dataclasses
import io

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from PIL import Image

from tests.visualsearch.conftest import ENCODERS, catalogue_image
from visualsearch import indexing
from visualsearch.encoders import get_encoder
from visualsearch.encoders.efficientnet import EfficientNetLite0Encoder
from visualsearch.encoders.preprocessing import crop_to_foreground, foreground_box, to_batch
from visualsearch.imaging import open_image
from visualsearch.models import ProductEmbedding


def product_photo(size=(28, 28), box=(9, 4, 19, 24), backdrop=0):
    """A light grey "garment" with some texture on a plain backdrop."""
    im = Image.new("RGB", size, (backdrop,) * 3)
    w, h = box[2] - box[0], box[3] - box[1]
    rng = np.random.default_rng(0)
    texture = rng.integers(150, 230, size=(h, w, 3), dtype=np.uint8)
    im.paste(Image.fromarray(texture), box[:2])
    return im


def shoppers_photo(im, pad=(6, 2, 0, 9), colour=(150, 90, 60), angle=8):
    """The product tilted on its own backdrop, on a coloured surface, off-centre."""
    tilted = im.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True, fillcolor=(0, 0, 0))
    left, top, right, bottom = pad
    canvas = Image.new("RGB", (tilted.width + left + right, tilted.height + top + bottom), colour)
    canvas.paste(tilted, (left, top))
    return canvas


# -- framing on the product ------------------------------------------------------------------


def test_foreground_box_finds_the_product_on_a_plain_backdrop():
    box, background = foreground_box(product_photo())
    assert background == (0, 0, 0)
    assert box == (9, 4, 19, 24)


def test_crop_is_square_centred_and_on_the_backdrop():
    out = crop_to_foreground(product_photo())
    assert out.mode == "RGB" and out.width == out.height
    assert 20 <= out.width <= 24  # the 20 px tall product plus a small margin
    assert out.getpixel((0, 0)) == (0, 0, 0)


def test_a_shoppers_photo_is_framed_like_the_catalogue_photo():
    catalogue = crop_to_foreground(product_photo())
    photo = shoppers_photo(product_photo())
    framed = crop_to_foreground(photo)
    # The coloured surface is gone: the border is the product's own (black) backdrop.
    border = np.concatenate([np.asarray(framed)[0], np.asarray(framed)[-1]])
    assert np.abs(border.astype(int)).max() < 40
    # Tilting widens the box a little; the surface no longer counts.
    assert framed.width < photo.width and abs(framed.width - catalogue.width) <= 6


@pytest.mark.parametrize(
    "image",
    [
        Image.new("RGB", (8, 8), (0, 255, 128)),  # one colour: nothing to find
        Image.fromarray(np.random.default_rng(1).integers(0, 256, (20, 30, 3), dtype=np.uint8)),
    ],
    ids=["blank", "busy"],
)
def test_images_without_a_plain_backdrop_are_left_alone(image):
    assert foreground_box(image) == ((0, 0, image.width, image.height), None)
    assert crop_to_foreground(image).tobytes() == image.tobytes()


def test_large_photos_are_analysed_on_a_thumbnail():
    big = product_photo().resize((2800, 2800), Image.Resampling.NEAREST)
    (left, top, right, bottom), background = foreground_box(big)
    assert background == (0, 0, 0)
    # Found at 64 px, so to within about one thumbnail pixel (44 px) of each edge.
    for got, want in zip((left, top, right, bottom), (900, 400, 1900, 2400), strict=True):
        assert abs(got - want) <= 50


def test_to_batch_matches_the_plain_formula():
    rng = np.random.default_rng(2)
    images = [Image.fromarray(rng.integers(0, 256, (s, s + 3, 3), dtype=np.uint8)) for s in (5, 9)]
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    batch = to_batch(images, 16, mean, std)
    assert batch.shape == (2, 3, 16, 16) and batch.dtype == np.float32
    assert batch.flags["C_CONTIGUOUS"]
    for i, im in enumerate(images):
        pixels = np.asarray(im.resize((16, 16), Image.Resampling.BICUBIC), dtype=np.float32)
        expected = ((pixels / 255.0 - mean) / std).transpose(2, 0, 1)
        np.testing.assert_allclose(batch[i], expected, atol=1e-5)


def test_foreground_crop_is_part_of_the_encoder_identity():
    cropping = EfficientNetLite0Encoder(artifact_dir="/nonexistent")
    plain = EfficientNetLite0Encoder(artifact_dir="/nonexistent", crop_foreground=False)
    assert cropping.crop_foreground and not plain.crop_foreground
    assert cropping.raw_hash != plain.raw_hash
    photo = product_photo()
    crop = cropping.preprocess([photo])
    assert crop.shape == plain.preprocess([photo]).shape == (1, 3, 224, 224)
    np.testing.assert_allclose(crop, plain.preprocess([crop_to_foreground(photo)]), atol=1e-6)


# -- reindex --fit-projection ----------------------------------------------------------------


@pytest.fixture
def projected_encoder(settings, tmp_path):
    settings.VISUALSEARCH_ENCODERS = {
        **ENCODERS,
        "pixelproj": "tests.visualsearch.encoders.ProjectedPixelEncoder",
    }
    settings.VISUALSEARCH_ENCODER = "pixelproj"
    settings.VISUALSEARCH_ARTIFACT_DIR = tmp_path
    enc = get_encoder("pixelproj")
    enc.calls = 0
    return enc


@pytest.fixture
def labelled_catalogue(product_factory, category_factory):
    """``make(n, kinds)``: ``n`` products with images, spread over ``kinds`` categories."""

    def make(n, kinds=3):
        cats = [category_factory(name=f"Kind {c}", slug=f"kind-{c}") for c in range(kinds)]
        return [
            product_factory(category=cats[i % kinds], image=catalogue_image(i)) for i in range(n)
        ]

    return make


def run(*args):
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.mark.django_db
def test_fit_projection_embeds_the_catalogue_once(projected_encoder, labelled_catalogue):
    enc = projected_encoder
    products = labelled_catalogue(12)
    raw_hash = enc.weights_hash
    assert "4 embedded" in run("reindex", "--ids", *[str(p.pk) for p in products[:4]])
    enc.calls = 0

    out = run("reindex", "--all", "--fit-projection", "--batch-size", "5", "--pairs", "0")
    assert "12 embedded" in out and "Fitted the projection on 12 products in 3 categories:" in out
    assert enc.calls == 3  # one pass over the catalogue, in batches of 5: no second pass
    assert enc.projection.whitening is None
    assert enc.projection_path().exists() and enc.weights_hash != raw_hash
    rows = ProductEmbedding.objects.filter(encoder="pixelproj")
    assert {r.weights_hash for r in rows} == {enc.weights_hash} and rows.count() == 12
    # The stored vectors are what embedding with the fitted projection gives.
    stored = {r.product_id: np.asarray(r.embedding, dtype=np.float32) for r in rows}
    images = [open_image(p.image.read()) for p in products]
    np.testing.assert_allclose(
        np.stack([stored[p.pk] for p in products]), enc.embed(images), atol=1e-5
    )
    assert indexing.stale_products(enc) == []
    assert "0 embedded" in run("reindex", "--stale")


@pytest.mark.django_db
def test_fit_projection_learns_invariance_from_some_products_photos(
    projected_encoder, labelled_catalogue
):
    enc = projected_encoder
    products = labelled_catalogue(12)
    out = run("reindex", "--all", "--fit-projection", "--batch-size", "5", "--pairs", "7")
    assert "invariance learned from shopper-style photos of 7 products" in out
    assert enc.calls == 3 + 2  # the catalogue in 3 batches, then the 7 photos in 2
    projection = enc.projection
    assert projection.whitening is not None and len(projection.pair_ids) == 7
    assert set(projection.pair_ids) <= {p.pk for p in products}
    # Seeded: fitting again on the same catalogue gives the same map, so nothing goes stale.
    digest = projection.digest
    indexing.reindex_with_projection(pairs=7)
    assert enc.projection.digest == digest
    assert indexing.stale_products(enc) == []


@pytest.mark.django_db
def test_projection_separates_the_catalogues_categories(projected_encoder, labelled_catalogue):
    products = labelled_catalogue(24)
    indexing.reindex_with_projection(gamma=4.0)
    vectors = {
        r.product_id: np.asarray(r.embedding, dtype=np.float32)
        for r in ProductEmbedding.objects.filter(encoder="pixelproj")
    }
    x = np.stack([vectors[p.pk] for p in products])
    labels = np.arange(24) % 3
    raw = projected_encoder.raw_embed([open_image(p.image.read()) for p in products])

    def margin(v):
        sims = v @ v.T
        same = labels[:, None] == labels[None, :]
        return sims[same].mean() - sims[~same].mean()

    assert margin(x) > margin(raw) + 0.05


@pytest.mark.django_db
@pytest.mark.parametrize(
    "args, message",
    [
        (["--stale", "--fit-projection"], "use it with --all"),
        (["--ids", "1", "--fit-projection"], "use it with --all"),
        (["--all", "--gamma", "0.3"], "--gamma only applies with --fit-projection"),
        (["--all", "--pairs", "10"], "--pairs only applies with --fit-projection"),
        (["--all", "--fit-projection", "--pairs", "-1"], "--pairs must not be negative"),
        (["--all", "--fit-projection", "--encoder", "pixel"], "does not support a learned"),
    ],
)
def test_fit_projection_errors(projected_encoder, args, message):
    with pytest.raises(CommandError, match=message):
        run("reindex", *args)


@pytest.mark.django_db
def test_fit_projection_needs_two_categories(projected_encoder, product_factory, category_factory):
    kind = category_factory(name="Only", slug="only")
    for i in range(3):
        product_factory(category=kind, image=catalogue_image(i))
    with pytest.raises(CommandError, match="at least two categories"):
        run("reindex", "--all", "--fit-projection")
    assert not projected_encoder.projection_path().exists()


@pytest.mark.django_db
def test_evaluate_visual_leaves_out_the_products_the_projection_learned_from(
    projected_encoder,
):
    """Robustness is measured on products whose photos the projection never saw."""
    import json

    from shop.demo.catalog import load_demo_catalog

    load_demo_catalog(size=30)
    counts = indexing.reindex_with_projection(pairs=25)
    assert counts["pairs"] == 25
    report = json.loads(
        run("evaluate_visual", "--queries", "10", "--robust-queries", "10", "--json")
    )
    assert report["robust_excluded_training_products"] == 25
    assert report["robust_queries"] == 5  # only 30 - 25 products are left to distort


@pytest.mark.django_db
def test_demo_fits_the_projection_once_and_refits_one_without_invariance(
    projected_encoder, labelled_catalogue, settings
):
    from shop.management.commands.prepare_demo import Command as PrepareDemo
    from visualsearch.encoders.projection import fit

    settings.VISUALSEARCH_PROJECTION_PAIRS = 6
    labelled_catalogue(10, kinds=2)
    command = PrepareDemo(stdout=io.StringIO())
    command.index_catalogue()
    first = projected_encoder.projection
    assert first.whitening is not None and len(first.pair_ids) == 6
    mtime = projected_encoder.projection_path().stat().st_mtime_ns
    command.index_catalogue()  # up to date: nothing refitted
    assert projected_encoder.projection_path().stat().st_mtime_ns == mtime
    # An older projection with the category stage only is replaced by one with both.
    features = np.random.default_rng(0).normal(size=(10, 64)).astype(np.float32)
    fit(features, np.arange(10) % 2).save(projected_encoder.projection_path())
    command.index_catalogue()
    assert projected_encoder.projection.whitening is not None


@pytest.mark.django_db
def test_photo_search_ranks_with_the_projections_category_prior(
    projected_encoder, labelled_catalogue, settings
):
    """A projection whose classifier is sure of one category, whatever the photo: behind
    the photographed product (the best match, which the prior never moves), that
    category's products come first; without the prior they do not."""
    from visualsearch import search

    products = labelled_catalogue(24)
    indexing.reindex_with_projection(pairs=12)
    enc = projected_encoder
    projection, weights = enc.projection, enc.weights_hash
    assert projection.reranks and projection.category_prior
    wanted = str(products[1].category_id)
    labels = np.asarray(projection.category_labels)
    sure = dataclasses.replace(
        projection,
        category_coef=np.zeros_like(projection.category_coef),
        category_intercept=np.where(labels == wanted, 5.0, 0.0).astype(np.float32),
    )
    sure.save(enc.projection_path())
    assert enc.projection.category_intercept.max() == 5.0
    assert enc.weights_hash == weights  # the prior is not part of the vectors' identity
    settings.VISUALSEARCH_CATEGORY_PRIOR_MARGIN = 0.0
    category = {p.pk: str(p.category_id) for p in products}
    photo = open_image(products[5].image.read())  # of another category than the wanted one

    def first_the_wanted(hits):
        flags = [category[h.product_id] == wanted for h in hits[1:]]
        return flags == sorted(flags, reverse=True)

    settings.VISUALSEARCH_CATEGORY_PRIOR = 0
    without = search.search_by_images([photo], k=10, localise=False)[0]
    settings.VISUALSEARCH_CATEGORY_PRIOR = 1.0
    with_prior = search.search_by_images([photo], k=10, localise=False)[0]
    assert with_prior[0].product_id == without[0].product_id == products[5].pk
    assert first_the_wanted(with_prior) and not first_the_wanted(without)


@pytest.mark.django_db
def test_photo_search_reranks_its_candidates_by_the_invariant_similarity(
    projected_encoder, labelled_catalogue, settings
):
    from visualsearch import search
    from visualsearch.distortions import distort

    products = labelled_catalogue(24)
    indexing.reindex_with_projection(pairs=12)
    projection = projected_encoder.projection
    assert projection.reranks
    photos = [distort(open_image(p.image.read()), seed) for seed, p in enumerate(products[:3])]
    # Searched as they are (these JPEG'd photos may count as blocky), so that the test can
    # embed the same pixels itself.
    settings.VISUALSEARCH_BLOCKY_PHOTO_RATIO = None
    settings.VISUALSEARCH_CATEGORY_PRIOR = 0  # the re-ranking alone, without the prior

    settings.VISUALSEARCH_RERANK_CANDIDATES = 0
    # Each photo searched whole: the re-ranking alone (localisation fuses several views).
    plain = search.search_by_images(photos, k=5, localise=False)
    settings.VISUALSEARCH_RERANK_CANDIDATES = 24
    reranked = search.search_by_images(photos, k=5, localise=False)
    stored = {
        r.product_id: np.asarray(r.embedding, dtype=np.float32)
        for r in ProductEmbedding.objects.filter(encoder="pixelproj")
    }
    ids = sorted(stored)
    space = projection.rerank_vectors(np.stack([stored[i] for i in ids]))
    for photo, plain_hits, hits in zip(photos, plain, reranked, strict=True):
        # Every product was a candidate: the top 5 are the invariant space's top 5.
        query = projection.rerank_vectors(projected_encoder.embed([photo]))[0]
        scores = space @ query
        best = sorted(range(len(ids)), key=lambda i: (-scores[i], ids[i]))[:5]
        assert [h.product_id for h in hits] == [ids[i] for i in best]
        np.testing.assert_allclose([h.score for h in hits], scores[best], atol=1e-5)
        assert len(plain_hits) == 5
    assert any(
        [h.product_id for h in a] != [h.product_id for h in b]
        for a, b in zip(plain, reranked, strict=True)
    ) or all(  # the two orders may agree, but then the scores come from the other space
        not np.allclose([h.score for h in a], [h.score for h in b])
        for a, b in zip(plain, reranked, strict=True)
    )
