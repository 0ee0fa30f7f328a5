"""System checks of the recommendations app: ``RECOMMENDATIONS_*`` settings that nothing
reads (a typo is otherwise ignored without a word), and limits that could not be applied."""

from django.core.checks import Error, register

from lookalike.checks import unknown_settings
from lookalike.clients import parse_rate

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
