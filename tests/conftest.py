import os

import pytest

from tests.factories import CategoryFactory, ProductFactory


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """Give each pytest process its own test database on the shared server.

    The embedded server is shared by every process using ``var/pgdata``, so two test
    runs at once (an editor's and a terminal's) must not drop each other's database.
    """
    from django.conf import settings

    test = settings.DATABASES["default"].setdefault("TEST", {})
    base = test.get("NAME") or "test_" + settings.DATABASES["default"]["NAME"]
    test["NAME"] = f"{base}_{os.getpid()}"


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    """Each test writes product images into its own folder, never into var/media."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.LOOKALIKE_JOBS_BACKEND = "inline"


@pytest.fixture(autouse=True)
def _fresh_per_process_state(settings):
    """No model, ranking or index job leaks from one test into the next.

    Serving caches the active model and the popular ranking per process; tests read the
    database at once instead. Saving a product would queue a CNN reindex job, which runs
    inline under tests: tests that want it turn it back on.
    """
    from recommendations.services import serving

    settings.RECOMMENDATIONS_RELOAD_CHECK_SECONDS = 0
    settings.RECOMMENDATIONS_POPULAR_CACHE_SECONDS = 0
    settings.VISUALSEARCH_INDEX_ON_SAVE = False
    serving.clear_cache()
    yield
    serving.clear_cache()


@pytest.fixture
def category_factory(db):
    return CategoryFactory


@pytest.fixture
def product_factory(db):
    return ProductFactory


@pytest.fixture
def product(product_factory):
    return product_factory()


@pytest.fixture
def admin_client(client, django_user_model):
    user = django_user_model.objects.create_superuser("boss", "boss@example.com", "pw-boss-123")
    client.force_login(user)
    client.user = user
    return client
