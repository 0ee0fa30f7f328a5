"""System checks of the recommendations app: ``RECOMMENDATIONS_*`` settings that nothing
reads (a typo is otherwise ignored without a word)."""

from django.core.checks import register

from lookalike.checks import unknown_settings

from .conf import app_settings


@register()
def check_settings(app_configs, **kwargs):
    return unknown_settings(app_settings, "recommendations.W001")
