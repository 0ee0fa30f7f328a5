"""The reindex, find_similar, vector_index and evaluate_visual commands."""

import io
import json

import pytest
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command

from tests.factories import failed_photo
from tests.visualsearch.conftest import catalogue_image
from visualsearch.models import IndexFailure, ProductEmbedding
from visualsearch.services import vector_index

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pixel_encoder")]


def run(*args, **options):
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO(), **options)
    return out.getvalue()


def test_reindex_command(product_factory):
    products = [product_factory(image=catalogue_image(i)) for i in range(4)]
    product_factory(image=ContentFile(b"nope", name="broken.png"))
    out = run("reindex", "--stale", "--batch-size", "3")
    assert "4 embedded, 1 failed" in out
    assert ProductEmbedding.objects.count() == 4 and IndexFailure.objects.count() == 1
    out = run("reindex")
    # The failure of the first run is not forgotten in the second one's report.
    assert "0 embedded, 0 failed" in out and "1 product(s) in all have an image that" in out
    assert "2 embedded" in run("reindex", "--ids", str(products[0].pk), str(products[1].pk))
    out = run("reindex", "--all", "--encoder", "pixel16")
    assert "4 embedded" in out and "Created the HNSW index visualsearch_hnsw_pixel16_256" in out
    assert "0 embedded" in run("reindex", "--encoder", "pixel16", "--no-verify")


def test_reindex_lists_products_without_an_image(product_factory):
    product_factory(image=catalogue_image(0))
    bare = [product_factory(image="") for _ in range(2)]
    out = run("reindex", "--stale")
    assert "1 embedded, 0 failed" in out
    assert (
        f"2 product(s) have no image, so no vector (not counted above): {bare[0].pk}, {bare[1].pk}."
        in out
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["--encoder", "nope"], "Unknown visual-search encoder 'nope'"),
        (["--ids", "999999"], "No product with id 999999"),
        (["--ids", "abc"], "Product ids must be keys of products"),
        (["--batch-size", "0"], "--batch-size"),
        # Before the catalogue is embedded, not by the fit minutes later.
        (["--all", "--fit-projection", "--gamma", "nan"], "--gamma must be a number"),
        (["--all", "--fit-projection", "--gamma", "-5"], "--gamma must be a number"),
    ],
)
def test_reindex_command_errors(args, message):
    with pytest.raises(CommandError, match=message):
        run("reindex", *args)


def test_find_similar_json(catalogue):
    product = catalogue[0]
    lines = run("find_similar", "--product", str(product.pk), "--k", "5", "--json").splitlines()
    assert len(lines) == 1
    line = json.loads(lines[0])
    assert line["query"] == str(product.pk)
    assert len(line["results"]) == 5 and set(line["results"][0]) == {"id", "score"}
    assert product.pk not in [r["id"] for r in line["results"]]

    paths = [catalogue[i].image.path for i in (4, 9, 4)]
    lines = [json.loads(x) for x in run("find_similar", "--image", *paths, "--json").splitlines()]
    assert [x["query"] for x in lines] == paths
    assert [x["results"][0]["id"] for x in lines] == [catalogue[i].pk for i in (4, 9, 4)]
    assert all(len(x["results"]) == 10 for x in lines)
    assert "Item" in run("find_similar", "--product", str(product.pk), "--k", "2")


def test_find_similar_errors(catalogue, tmp_path, product_factory):
    text = tmp_path / "notes.png"
    text.write_bytes(b"not an image")
    with pytest.raises(CommandError, match="Cannot read"):
        run("find_similar", "--image", catalogue[0].image.path, str(text), "--json")
    with pytest.raises(CommandError, match="not found"):
        run("find_similar", "--image", str(tmp_path / "missing.jpg"))
    with pytest.raises(CommandError, match="is a folder, not an image"):
        run("find_similar", "--image", str(tmp_path))
    # Past the photo search's pixel limit: refused before it is decoded, with no warning.
    from PIL import Image

    Image.new("L", (8000, 6000)).save(tmp_path / "huge.png")
    with pytest.raises(CommandError, match="8000×6000 pixels; at most"):
        run("find_similar", "--image", str(tmp_path / "huge.png"))
    with pytest.raises(CommandError, match="No product with id"):
        run("find_similar", "--product", "999999")
    fresh = product_factory(image=catalogue_image(70))
    with pytest.raises(CommandError, match="reindex"):
        run("find_similar", "--product", str(fresh.pk))
    with pytest.raises(CommandError, match="--k"):
        run("find_similar", "--product", str(catalogue[0].pk), "--k", "0")


def test_vector_index_command():
    name = vector_index.index_name("pixel16", 256)
    assert f"Created {name}" in run("vector_index", "--encoder", "pixel16")
    assert "already exists" in run("vector_index", "--encoder", "pixel16")
    assert name in run("vector_index", "--list")
    assert f"Created {name}" in run("vector_index", "--encoder", "pixel16", "--rebuild", "--m", "8")
    assert f"Dropped {name}" in run("vector_index", "--encoder", "pixel16", "--drop")
    assert not vector_index.has_index("pixel16", 256)
    with pytest.raises(CommandError, match="Unknown"):
        run("vector_index", "--encoder", "nope")
    with pytest.raises(CommandError, match="Unknown"):
        run("vector_index", "--list", "--encoder", "nope")


def test_vector_index_refuses_bad_settings_before_dropping_anything():
    run("vector_index", "--encoder", "pixel16")
    for args, message in (
        (["--m", "0"], "--m must be from 2 to 100"),
        (["--m", "99999999999999999999"], "--m must be from 2 to 100"),
        (["--ef-construction", "5000"], "--ef-construction must be from 4 to 1000"),
        (["--m", "16", "--ef-construction", "20"], "at least twice --m"),
    ):
        with pytest.raises(CommandError, match=message):
            run("vector_index", "--encoder", "pixel16", "--rebuild", *args)
        assert vector_index.has_index("pixel16", 256)  # the shop keeps its index


@pytest.mark.parametrize(
    "command", [["find_similar", "--product", "1"], ["reindex", "--stale"], ["vector_index"]]
)
def test_an_encoder_without_its_weights_is_a_one_line_error(command, settings, tmp_path):
    settings.VISUALSEARCH_WEIGHTS = {"resnet50": str(tmp_path / "missing.pth")}
    with pytest.raises(CommandError, match="Weights file for encoder 'resnet50' not found"):
        run(*command, "--encoder", "resnet50")


def test_evaluate_visual_json():
    from shop.demo.catalog import load_demo_catalog

    load_demo_catalog(size=60)
    run("reindex")
    report = json.loads(
        run("evaluate_visual", "--queries", "20", "--robust-queries", "10", "--json")
    )
    for key in ("precision_at_10", "map_at_10", "robust_hit_at_10"):
        assert 0.0 <= report[key] <= 1.0
    assert report["encoder"] == "pixel" and report["catalogue_size"] == 60
    assert report["queries"] == 20 and len(report["per_category"]) == 10
    assert set(report["per_category"]["Trouser"]) == {"n", "precision", "map"}
    # Raw pixels already separate trousers from bags better than chance (0.1).
    assert report["precision_at_10"] > 0.3
    # Robustness per kind of shopper photo; the top-level figure is the standard kind's.
    from visualsearch.distortions import KINDS

    assert set(report["robust_per_kind"]) == set(KINDS) and report["localise"] is True
    for figures in report["robust_per_kind"].values():
        assert figures["queries"] == 10 and 0.0 <= figures["hit_at_10"] <= 1.0
    assert report["robust_hit_at_10"] == report["robust_per_kind"]["standard"]["hit_at_10"]
    hits = [f["hit_at_10"] for f in report["robust_per_kind"].values()]
    assert report["robust_hit_at_10_all_kinds"] == pytest.approx(sum(hits) / len(hits))
    some = json.loads(
        run(
            "evaluate_visual",
            *("--queries", "10", "--robust-queries", "5", "--json"),
            *("--kinds", "textured,two_products", "--no-localise"),
        )
    )
    assert set(some["robust_per_kind"]) == {"textured", "two_products"}
    assert some["robust_hit_at_10"] is None and some["localise"] is False
    with pytest.raises(CommandError, match="Unknown kind.*underwater"):
        run("evaluate_visual", "--kinds", "standard,underwater")


def test_evaluate_visual_needs_an_index():
    with pytest.raises(CommandError, match="reindex"):
        run("evaluate_visual", "--queries", "5")


def test_vector_index_command_builds_category_indexes(catalogue, settings):
    """Categories above the exact-search threshold get their own graph, after the vectors'
    copies of the categories are brought up to date."""
    settings.VISUALSEARCH_EXACT_SEARCH_MAX_ROWS = 9
    ProductEmbedding.objects.filter(product=catalogue[0]).update(product_category=None)
    out = run("vector_index", "--encoder", "pixel")
    assert "Updated the category or price copied on 1 vectors." in out
    names = {vector_index.category_index_name("pixel", 64, p.category_id) for p in catalogue}
    assert all(f"Created {name}." in out for name in names)
    listing = run("vector_index", "--list")
    assert all(name in listing for name in names) and "category" in listing
    assert all(name not in run("vector_index", "--encoder", "pixel") for name in names)


def test_find_similar_says_why_a_product_has_no_vector(product_factory):
    faceless = product_factory(image="")
    with pytest.raises(CommandError, match="has no image"):
        run("find_similar", "--product", str(faceless.pk))
    broken = product_factory()
    failed_photo(broken)
    with pytest.raises(CommandError, match="could not be embedded: cannot identify"):
        run("find_similar", "--product", str(broken.pk))
    with pytest.raises(CommandError, match="reindex --stale"):
        run("find_similar", "--product", str(product_factory().pk))
