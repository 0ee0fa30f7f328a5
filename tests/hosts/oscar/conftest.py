"""Fixtures of the Oscar host project (its own pytest run: the main suite's
``tests/conftest.py``, which imports the reference shop, is never loaded here)."""

import os

import pytest
from oscarshop.catalogue import build_catalogue


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """Each pytest process gets its own test database on the shared embedded server (as
    the main suite's conftest does), so two runs at once do not drop each other's."""
    from django.conf import settings

    test = settings.DATABASES["default"].setdefault("TEST", {})
    base = test.get("NAME") or "test_" + settings.DATABASES["default"]["NAME"]
    test["NAME"] = f"{base}_{os.getpid()}"


@pytest.fixture(scope="session", autouse=True)
def media_root(tmp_path_factory):
    """Product images of the whole run in a temporary folder (the module-scoped catalogue
    and its reindex need it before any test's ``settings`` fixture exists)."""
    from django.test.utils import override_settings

    root = tmp_path_factory.mktemp("media")
    with override_settings(MEDIA_ROOT=root):
        yield root


@pytest.fixture(autouse=True)
def _isolated(settings, tmp_path):
    """Models in the test's own folder; the served model and popularity are read from the
    database at once."""
    from recommendations.services import serving

    settings.RECOMMENDATIONS_ARTIFACT_DIR = tmp_path / "recommender"
    settings.VISUALSEARCH_ARTIFACT_DIR = tmp_path / "models"
    settings.RECOMMENDATIONS_RELOAD_CHECK_SECONDS = 0
    settings.RECOMMENDATIONS_POPULAR_CACHE_SECONDS = 0
    serving.clear_cache()
    yield
    serving.clear_cache()


@pytest.fixture(scope="module")
def catalogue(django_db_setup, django_db_blocker, media_root):
    """The catalogue (:mod:`oscarshop.catalogue`), created and committed once per module;
    each test's own writes are rolled back. Saving it queues no reindex: the tests embed
    it themselves."""
    from django.test.utils import override_settings
    from oscar.core.loading import get_model

    with django_db_blocker.unblock(), override_settings(VISUALSEARCH_INDEX_ON_SAVE=False):
        catalogue = build_catalogue()
    yield catalogue
    with django_db_blocker.unblock():
        get_model("catalogue", "Product").objects.all().delete()
        get_model("catalogue", "Category").objects.all().delete()
        get_model("partner", "Partner").objects.all().delete()
        get_model("catalogue", "ProductClass").objects.all().delete()
