"""The apps' settings objects: one base class, names derived from the properties, and a
check that names a misspelt setting instead of ignoring it."""

import pytest
from django.core.checks import run_checks

from lookalike.conf import AppSettings
from lookalike.conf import app_settings as lookalike_settings
from recommendations.conf import app_settings as recommendations_settings
from visualsearch.conf import app_settings as visualsearch_settings

APPS = [
    (lookalike_settings, "LOOKALIKE_", "lookalike.W001"),
    (visualsearch_settings, "VISUALSEARCH_", "visualsearch.W002"),
    (recommendations_settings, "RECOMMENDATIONS_", "recommendations.W001"),
]


@pytest.mark.parametrize("app_settings, prefix, check_id", APPS)
def test_each_app_settings_object_derives_its_names_from_its_properties(
    app_settings, prefix, check_id
):
    assert isinstance(app_settings, AppSettings) and app_settings.prefix == prefix
    names = app_settings.names()
    assert names and all(name.startswith(prefix) for name in names)
    for name in names:
        getattr(app_settings, name.removeprefix(prefix))  # every name reads a default


def test_defaults_are_read_on_access(settings):
    assert visualsearch_settings.EF_SEARCH == 100
    settings.VISUALSEARCH_EF_SEARCH = 40
    assert visualsearch_settings.EF_SEARCH == 40


def test_a_value_read_once_follows_every_later_change_of_the_setting(settings):
    """Values are kept per process, and forgotten whenever a setting changes: an override
    is seen after the value was read, and so is its end."""
    from django.test import override_settings

    assert lookalike_settings.CURRENCY == "EUR"
    with override_settings(LOOKALIKE_CURRENCY="CHF"):
        assert lookalike_settings.CURRENCY == "CHF"
        assert lookalike_settings.CURRENCY == "CHF"
    assert lookalike_settings.CURRENCY == "EUR"
    settings.LOOKALIKE_CURRENCY = "GBP"
    assert lookalike_settings.CURRENCY == "GBP"


def _warnings(check_id):
    return [m for m in run_checks() if m.id == check_id]


def test_the_project_has_no_unknown_settings():
    assert not [m for m in run_checks() if m.id in {check_id for *_, check_id in APPS}]


@pytest.mark.parametrize(
    "misspelt, meant, check_id",
    [
        ("VISUALSEARCH_EF_SERACH", "VISUALSEARCH_EF_SEARCH", "visualsearch.W002"),
        (
            "RECOMMENDATIONS_BLEND_CANDIDATE",
            "RECOMMENDATIONS_BLEND_CANDIDATES",
            "recommendations.W001",
        ),
        ("LOOKALIKE_JOBS_BACKEN", "LOOKALIKE_JOBS_BACKEND", "lookalike.W001"),
    ],
)
def test_a_misspelt_setting_is_named_with_the_closest_one(settings, misspelt, meant, check_id):
    setattr(settings, misspelt, 1)
    [warning] = _warnings(check_id)
    assert misspelt in warning.msg and warning.hint == f"Did you mean {meant}?"


def test_an_unknown_setting_without_a_close_one_points_at_the_documentation(settings):
    settings.VISUALSEARCH_ZZZ = 1
    [warning] = _warnings("visualsearch.W002")
    assert "VISUALSEARCH_ZZZ" in warning.msg and "visualsearch.conf" in warning.hint


def test_a_renamed_setting_is_reported_once_as_renamed(settings):
    settings.VISUALSEARCH_PRODUCT_FIELDS = {}
    ids = [m.id for m in run_checks() if "VISUALSEARCH_PRODUCT_FIELDS" in m.msg]
    assert ids == ["lookalike.E001"]


@pytest.mark.parametrize(
    "setting, value, check_id, message",
    [
        (
            "LOOKALIKE_BASE_TEMPLATE",
            "nope/base.html",
            "lookalike.E007",
            "LOOKALIKE_BASE_TEMPLATE names the template 'nope/base.html', which no template "
            "loader finds.",
        ),
        (
            "LOOKALIKE_CARD_TEMPLATE",
            "nope/card.html",
            "lookalike.E007",
            "LOOKALIKE_CARD_TEMPLATE names the template 'nope/card.html', which no template "
            "loader finds.",
        ),
        (
            "LOOKALIKE_JOBS_BACKEND",
            "bogus",
            "lookalike.E008",
            "LOOKALIKE_JOBS_BACKEND is 'bogus'; it must be one of 'worker', 'celery', 'inline'.",
        ),
        (
            "VISUALSEARCH_ENCODER",
            "nope",
            "visualsearch.E009",
            "VISUALSEARCH_ENCODER is 'nope', which is not a registered encoder.",
        ),
        (
            "VISUALSEARCH_API_PRODUCT_VIEWSET",
            "nope.View",
            "visualsearch.E010",
            "VISUALSEARCH_API_PRODUCT_VIEWSET: cannot import 'nope.View' (No module named 'nope').",
        ),
        (
            "VISUALSEARCH_API_PRODUCT_VIEWSET",
            None,
            "visualsearch.E010",
            "VISUALSEARCH_API_PRODUCT_VIEWSET must be a dotted path (a string), not None.",
        ),
        (
            # recommendations' viewset named, the app left out of INSTALLED_APPS
            "VISUALSEARCH_API_PRODUCT_VIEWSET",
            "tests.orphan_model.Orphan",
            "visualsearch.E010",
            "VISUALSEARCH_API_PRODUCT_VIEWSET: importing 'tests.orphan_model.Orphan' failed",
        ),
        (
            "VISUALSEARCH_API_PRODUCT_VIEWSET",
            "lookalike.conf.AppSettings",
            "visualsearch.E010",
            "VISUALSEARCH_API_PRODUCT_VIEWSET: 'lookalike.conf.AppSettings' is not a subclass of "
            "rest_framework.viewsets.ViewSetMixin.",
        ),
    ],
)
def test_a_wrong_value_fails_check_naming_the_setting(settings, setting, value, check_id, message):
    setattr(settings, setting, value)
    [error] = [m for m in run_checks() if m.is_serious()]
    assert error.id == check_id and error.msg.startswith(message)


def test_an_encoder_registered_in_settings_passes_the_check(settings):
    settings.VISUALSEARCH_ENCODERS = {"house": "myshop.encoders.HouseEncoder"}
    settings.VISUALSEARCH_ENCODER = "house"
    assert not [m for m in run_checks() if m.id == "visualsearch.E009"]


def test_an_api_viewset_that_cannot_be_imported_answers_improperly_configured(settings):
    """The URLconf still loads (so that the check can say why); the endpoint then raises
    the error that names the setting, as every request would."""
    from django.core.exceptions import ImproperlyConfigured
    from rest_framework.test import APIRequestFactory

    from visualsearch.api.urls import _product_viewset

    settings.VISUALSEARCH_API_PRODUCT_VIEWSET = "nope.View"
    view = _product_viewset().as_view({"get": "similar"})
    request = APIRequestFactory().get("/api/products/1/similar/")
    with pytest.raises(ImproperlyConfigured, match="VISUALSEARCH_API_PRODUCT_VIEWSET"):
        view(request, pk="1")


def test_a_base_template_without_the_plugin_blocks_is_reported(settings):
    """Django's admin layout defines "title", "extrahead" and "content" (the last two in
    the template it extends) but no "extrascripts": the plugin pages would run no script."""
    settings.LOOKALIKE_BASE_TEMPLATE = "admin/base_site.html"
    [warning] = [m for m in run_checks() if m.id == "lookalike.W004"]
    assert "has no block 'extrascripts'" in warning.msg
    settings.LOOKALIKE_BASE_TEMPLATE = "shop/base.html"
    assert not [m for m in run_checks() if m.id == "lookalike.W004"]
