"""The host shop's product model, reached through settings so this app never imports it."""

from django.apps import apps

from .conf import app_settings


def product_model():
    """The model named by ``LOOKALIKE_PRODUCT_MODEL``."""
    return apps.get_model(app_settings.PRODUCT_MODEL)
