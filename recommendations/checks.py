"""System checks of the recommendations app: ``RECOMMENDATIONS_*`` settings that nothing
reads (a typo is otherwise ignored without a word), limits that could not be applied, tables
keyed for another product model, and a relative artefact directory in deployment."""

from django.core.checks import Error, Tags, register

from lookalike.checks import unknown_settings
from lookalike.clients import parse_rate
from visualsearch.checks import product_key_mismatches, relative_directory

from .conf import app_settings


@register()
def check_settings(app_configs, **kwargs):
    return unknown_settings(app_settings, "recommendations.W001")


@register()
def check_client_limits(app_configs, **kwargs):
    """The per-address limits of :mod:`recommendations.events` must be readable, or every
    product page would fail on them."""
    errors = []
    try:
        parse_rate(app_settings.CLIENT_SESSION_RATE)
    except ValueError as exc:
        errors.append(
            Error(
                f"RECOMMENDATIONS_CLIENT_SESSION_RATE: {exc}",
                hint="A number of sessions per second, minute, hour or day, or None.",
                id="recommendations.E001",
            )
        )
    shoppers = app_settings.MAX_CLIENT_SHOPPERS
    if shoppers is not None and (not isinstance(shoppers, int) or shoppers < 0):
        errors.append(
            Error(
                "RECOMMENDATIONS_MAX_CLIENT_SHOPPERS must be a whole number of at least 0, "
                f"or None; it is {shoppers!r}.",
                id="recommendations.E002",
            )
        )
    return errors


@register(Tags.database)
def check_product_keys(app_configs, databases=None, **kwargs):
    """Events and impressions keyed for another product model than the setting's: training
    and the widgets would fail on them."""
    return product_key_mismatches("recommendations", "recommendations.E003", databases)


@register(deploy=True)
def check_artifact_dir(app_configs, **kwargs):
    """Deployed, the model a worker trains into ``RECOMMENDATIONS_ARTIFACT_DIR`` is served by
    every web process."""
    return relative_directory(
        "RECOMMENDATIONS_ARTIFACT_DIR",
        app_settings.ARTIFACT_DIR,
        "recommendations.W002",
    )
