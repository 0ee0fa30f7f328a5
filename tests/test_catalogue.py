"""The host seam: the catalogue adapter, its system checks and the product keys it parses."""

import pytest
from django.core.checks import run_checks

from lookalike.catalogue import FieldsCatalogueAdapter, get_adapter


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


def test_check_runs_as_a_command_and_fails(settings, capsys):
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    settings.LOOKALIKE_PRODUCT_FIELDS = {"stock": "nope"}
    with pytest.raises(SystemCheckError, match=r"LOOKALIKE_PRODUCT_FIELDS\['stock'\] names 'nope'"):
        call_command("check")


@pytest.mark.parametrize("value", ["abc", "", "1.5", str(2**63), "-" + str(2**63 + 1), None])
def test_product_keys_that_cannot_be_are_refused(value):
    with pytest.raises(ValueError):
        get_adapter().parse_pk(value)


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
