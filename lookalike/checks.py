"""System checks of the host seam: the product model, the adapter, renamed and misspelt
settings.

Registered when either plugin app is ready; each message names the setting to fix, the way
``django.contrib.auth.checks`` names ``AUTH_USER_MODEL``.
"""

from django.core.checks import Error, Warning, register
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


def unknown_settings(app_settings, check_id):
    """Warnings for the project settings with ``app_settings``' prefix that it does not
    read: a misspelt name would otherwise be ignored without a word. Each names the
    closest known setting; settings that were renamed are :data:`RENAMED`'s errors."""
    warnings = []
    for name, closest in app_settings.unknown(ignore=RENAMED):
        hint = f"Did you mean {closest}?" if closest else None
        warnings.append(
            Warning(
                f"{name} is not a setting of {app_settings.prefix.rstrip('_').lower()}; "
                "it is ignored.",
                hint=hint or f"Its settings are documented in {type(app_settings).__module__}.",
                id=check_id,
            )
        )
    return warnings


@register()
def check_settings(app_configs=None, **kwargs):
    return unknown_settings(app_settings, "lookalike.W001")


@register()
def check_shared_cache(app_configs=None, **kwargs):
    """The per-process caches of profiles, experiments and the catalogue are checked against
    stamps in ``CACHES["default"]`` (:mod:`lookalike.stamps`): a cache each process keeps to
    itself never tells the other processes that a profile was published or a product saved."""
    from django.conf import settings

    backend = settings.CACHES.get("default", {}).get("BACKEND", "")
    if backend.endswith("LocMemCache"):
        return [
            Warning(
                'CACHES["default"] is kept by each process to itself: other processes '
                "would keep serving a blend profile, an experiment or catalogue pages that "
                "changed until they restart.",
                hint="Use a cache every process shares (Redis, or Django's database cache) "
                "when the shop runs more than one process.",
                id="lookalike.W002",
            )
        ]
    return []
