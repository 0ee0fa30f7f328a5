"""The host shop's product model, reached through settings so this app never imports it."""

from django.apps import apps

from .conf import app_settings


def product_model():
    """The model named by ``LOOKALIKE_PRODUCT_MODEL``."""
    return apps.get_model(app_settings.PRODUCT_MODEL)


def filter_copies(category, price):
    """``(category, price)`` as the vectors copy them: a category key that is not an integer
    is not copied (those shops get no category index), a price becomes a double."""
    return (
        category if isinstance(category, int) else None,
        None if price is None else float(price),
    )
