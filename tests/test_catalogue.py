"""The host seam: the catalogue adapter, its system checks and the product keys it parses."""

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.checks import run_checks

from lookalike.catalogue import FieldsCatalogueAdapter, get_adapter
from shop.models import Product

ROOT = Path(__file__).resolve().parent.parent
ADAPTERS = "tests.catalogue_adapters."


def lookalike_errors():
    return [m for m in run_checks() if m.id and m.id.startswith("lookalike.")]


def test_the_reference_shop_passes_the_checks():
    assert lookalike_errors() == []


@pytest.mark.parametrize(
    "setting, value, names",
    [
        ("LOOKALIKE_PRODUCT_MODEL", None, "LOOKALIKE_PRODUCT_MODEL"),
        ("LOOKALIKE_PRODUCT_MODEL", "shop.Nope", "LOOKALIKE_PRODUCT_MODEL"),
        ("LOOKALIKE_CATALOGUE_ADAPTER", "shop.adapters.Missing", "LOOKALIKE_CATALOGUE_ADAPTER"),
        (
            "LOOKALIKE_CATALOGUE_ADAPTER",
            "lookalike.conf.AppSettings",
            "LOOKALIKE_CATALOGUE_ADAPTER",
        ),
        ("LOOKALIKE_PRODUCT_FIELDS", {"image": "photo"}, "LOOKALIKE_PRODUCT_FIELDS['image']"),
        ("LOOKALIKE_PRODUCT_FIELDS", {"price": "title"}, "LOOKALIKE_PRODUCT_FIELDS['price']"),
        ("LOOKALIKE_PRODUCT_FIELDS", {"colour": "title"}, "LOOKALIKE_PRODUCT_FIELDS has unknown"),
        ("VISUALSEARCH_PRODUCT_FIELDS", {"image": "image"}, "LOOKALIKE_PRODUCT_FIELDS"),
    ],
)
def test_a_misconfiguration_fails_check_naming_the_setting(settings, setting, value, names):
    setattr(settings, setting, value)
    errors = lookalike_errors()
    assert errors, f"{setting}={value!r} passed the checks"
    assert any(names in e.msg for e in errors), [e.msg for e in errors]


def test_a_soft_delete_timestamp_as_the_active_field_is_told_what_to_do(settings):
    settings.LOOKALIKE_PRODUCT_FIELDS = {"active": "created_at"}  # a timestamp, not a flag
    [error] = [e for e in lookalike_errors() if e.id == "lookalike.E013"]
    assert "must be a BooleanField" in error.msg
    assert "get_queryset()" in error.hint and "'active' set to None" in error.hint


@pytest.mark.parametrize(
    "mistake, names",
    [
        ("no product model", "(lookalike.E002) LOOKALIKE_PRODUCT_MODEL is not set"),
        ("api viewset", "(visualsearch.E010) VISUALSEARCH_API_PRODUCT_VIEWSET: cannot import"),
    ],
)
def test_a_mistake_met_at_start_up_fails_check_without_a_traceback(mistake, names):
    """The models read LOOKALIKE_PRODUCT_MODEL and the URLconf imports the API viewset
    before any check runs: `manage.py check` still reports the setting."""
    env = {**os.environ, "LOOKALIKE_TEST_MISTAKE": mistake}
    env["DJANGO_SETTINGS_MODULE"] = "tests.misconfigured_settings"
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0 and names in output, output
    assert "Traceback" not in output


def test_without_the_product_model_setting_the_model_is_improperly_configured(settings):
    from django.core.exceptions import ImproperlyConfigured

    del settings.LOOKALIKE_PRODUCT_MODEL
    with pytest.raises(ImproperlyConfigured, match="LOOKALIKE_PRODUCT_MODEL is not set"):
        get_adapter().get_product_model()


def test_a_custom_adapter_that_fits_passes_the_checks(settings):
    settings.LOOKALIKE_CATALOGUE_ADAPTER = ADAPTERS + "ShopAdapter"
    assert lookalike_errors() == []


@pytest.mark.parametrize(
    "adapter, method, message",
    [
        ("MissingFieldAdapter", "price_expression()", "Cannot resolve keyword 'cost_cent'"),
        ("MissingStockFieldAdapter", "filter_in_stock(queryset)", "keyword 'quantity'"),
        ("NoImageAdapter", "image_name_expression()", "NotImplementedError"),
    ],
)
def test_an_adapter_query_that_does_not_compile_fails_check(settings, adapter, method, message):
    """Each query the plugins build from the adapter is compiled to SQL (not run): a
    missing field is a check error naming the setting and the method, not a 500."""
    settings.LOOKALIKE_CATALOGUE_ADAPTER = ADAPTERS + adapter
    [error] = lookalike_errors()
    assert error.id == "lookalike.E006"
    assert error.msg.startswith(f"LOOKALIKE_CATALOGUE_ADAPTER '{ADAPTERS}{adapter}': {method}")
    assert message in error.msg


def test_an_adapter_serving_another_model_than_the_setting_fails_check(settings):
    settings.LOOKALIKE_CATALOGUE_ADAPTER = ADAPTERS + "ShopAdapter"  # serves shop.Product
    settings.LOOKALIKE_PRODUCT_MODEL = "shop.Category"
    [error] = lookalike_errors()
    assert error.id == "lookalike.E004"
    assert "serves shop.Product (get_queryset(), get_indexed_queryset())" in error.msg
    assert "LOOKALIKE_PRODUCT_MODEL is 'shop.Category'" in error.msg


def test_check_runs_as_a_command_and_fails(settings, capsys):
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    settings.LOOKALIKE_PRODUCT_FIELDS = {"stock": "nope"}
    with pytest.raises(SystemCheckError, match=r"LOOKALIKE_PRODUCT_FIELDS\['stock'\] names 'nope'"):
        call_command("check")


def test_the_fields_adapter_follows_a_change_of_its_fields_after_resolving_them(settings):
    """The adapter resolves each role's field once, and again when the setting changes."""
    adapter = get_adapter()
    assert adapter.created_expression() is not None
    assert adapter.created_expression() is not None  # resolved, kept
    settings.LOOKALIKE_PRODUCT_FIELDS = {"created": None}
    assert adapter.created_expression() is None
    settings.LOOKALIKE_PRODUCT_FIELDS = {"created": "updated_at"}
    assert adapter._field("created").name == "updated_at"


@pytest.mark.parametrize("value", ["abc", "", "1.5", str(2**63), "-" + str(2**63 + 1), None])
def test_product_keys_that_cannot_be_are_refused(value):
    with pytest.raises(ValueError):
        get_adapter().parse_pk(value)


@pytest.mark.django_db
def test_category_keys_parse_whether_or_not_a_category_has_them(settings, category_factory):
    """A well-formed key is a key (filtered on, it finds nothing); a malformed one is
    refused. A text key parses from any text."""
    category = category_factory()
    adapter = get_adapter()
    assert adapter.parse_category_key(str(category.pk)) == category.pk
    assert adapter.parse_category_key(str(category.pk + 1000)) == category.pk + 1000
    with pytest.raises(ValueError, match="is not a category id"):
        adapter.parse_category_key("abc")
    settings.LOOKALIKE_CATALOGUE_ADAPTER = ADAPTERS + "TextCategoryKeysAdapter"
    assert get_adapter().parse_category_key("nonexistent") == "nonexistent"


def test_product_keys_are_parsed_from_text():
    assert get_adapter().parse_pk("42") == 42
    assert get_adapter().parse_pk(7) == 7


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["99999999999999999999999", "abc", "-1"])
def test_impossible_product_ids_are_404_not_500(client, key):
    assert client.get(f"/visual/similar/{key}/").status_code == 404
    response = client.get(f"/api/products/{key}/similar/")
    assert response.status_code == 404


@pytest.mark.django_db
def test_cards_come_from_the_adapter(product_factory):
    product = product_factory(stock=0)
    adapter = get_adapter()
    assert isinstance(adapter, FieldsCatalogueAdapter)
    [loaded] = adapter.annotate(adapter.get_queryset()).filter(pk=product.pk)
    card = adapter.get_card(loaded)
    assert (card.pk, card.title, card.price, card.in_stock) == (
        product.pk,
        product.title,
        product.price,
        False,
    )
    assert card.url == product.get_absolute_url() and card.category == product.category.name
    assert card.image_url == product.image.url and card.currency == "EUR"


@pytest.mark.django_db
def test_an_inactive_product_is_never_shown(product_factory):
    hidden = product_factory(is_active=False)
    adapter = get_adapter()
    assert not adapter.get_queryset().filter(pk=hidden.pk).exists()
    assert adapter.get_indexed_queryset().filter(pk=hidden.pk).exists()


def test_a_cache_each_process_keeps_is_warned_about(settings):
    """The stamps of profiles, experiments and the catalogue live in the default cache."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    [warning] = [m for m in run_checks() if m.id == "lookalike.W002"]
    assert "until they restart" in warning.msg
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "c"}
    }
    assert [m for m in run_checks() if m.id == "lookalike.W002"] == []


@pytest.mark.django_db
def test_a_price_expression_of_its_own_is_the_price_everywhere(settings, product_factory):
    """Overriding ``price_expression`` of the fields adapter (a price kept in cents) is
    enough: the cards and the price filter use it, not the field read as it is."""
    settings.LOOKALIKE_CATALOGUE_ADAPTER = ADAPTERS + "CentsAdapter"
    product = product_factory(price=Decimal("1999.00"))
    cheap = product_factory(price=Decimal("500.00"))
    adapter = get_adapter()
    assert adapter.get_price(product) == Decimal("19.99")
    assert adapter.get_card(adapter.annotate(Product.objects.filter(pk=product.pk))[0]).price == (
        Decimal("19.99")
    )
    queryset = Product.objects.filter(pk__in=[product.pk, cheap.pk])
    assert list(adapter.filter_price(queryset, min_price="10", max_price="20")) == [product]
    assert list(adapter.filter_price(queryset, max_price="6")) == [cheap]
