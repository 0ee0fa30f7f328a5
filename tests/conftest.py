import pytest

from tests.factories import CategoryFactory, ProductFactory


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    """Each test writes product images into its own folder, never into var/media."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.LOOKALIKE_JOBS_BACKEND = "inline"


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
