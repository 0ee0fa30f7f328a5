"""System checks of the host seam: the product model, the adapter, renamed settings.

Registered when either plugin app is ready; each message names the setting to fix, the way
``django.contrib.auth.checks`` names ``AUTH_USER_MODEL``.
"""

from django.core.checks import Error, register
from django.core.exceptions import ImproperlyConfigured

from .conf import app_settings

#: Settings of earlier versions and what replaced them.
RENAMED = {
    "VISUALSEARCH_PRODUCT_FIELDS": "LOOKALIKE_PRODUCT_FIELDS",
    "RECOMMENDATIONS_PRODUCT_FIELDS": "LOOKALIKE_PRODUCT_FIELDS",
    "RECOMMENDATIONS_CARD_TEMPLATE": "LOOKALIKE_CARD_TEMPLATE",
}


@register()
def check_catalogue(app_configs=None, **kwargs):
    from django.conf import settings

    from .catalogue import get_adapter

    errors = [
        Error(
            f"{old} is no longer read; use {new}.",
            hint="See 'Add Lookalike to your shop' in the README.",
            id="lookalike.E001",
        )
        for old, new in RENAMED.items()
        if hasattr(settings, old)
    ]
    if not app_settings.PRODUCT_MODEL:
        errors.append(
            Error(
                "LOOKALIKE_PRODUCT_MODEL is not set.",
                hint="Set it to your product model, e.g. LOOKALIKE_PRODUCT_MODEL = "
                "'catalogue.Product'.",
                id="lookalike.E002",
            )
        )
        return errors
    try:
        adapter = get_adapter()
        model = adapter.get_product_model()
    except ImproperlyConfigured as exc:
        errors.append(Error(str(exc), id="lookalike.E003"))
        return errors
    if (
        model._meta.label != app_settings.PRODUCT_MODEL
        and model._meta.label_lower != str(app_settings.PRODUCT_MODEL).lower()
    ):
        errors.append(
            Error(
                f"The catalogue adapter serves {model._meta.label}, but "
                f"LOOKALIKE_PRODUCT_MODEL is {app_settings.PRODUCT_MODEL}.",
                id="lookalike.E004",
            )
        )
    try:
        errors.extend(adapter.check())
    except Exception as exc:  # a broken adapter must be reported, not crash `check`
        errors.append(
            Error(
                f"LOOKALIKE_CATALOGUE_ADAPTER {app_settings.CATALOGUE_ADAPTER}: its check() "
                f"failed with {type(exc).__name__}: {exc}",
                id="lookalike.E005",
            )
        )
    return errors
