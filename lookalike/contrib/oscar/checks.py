"""System checks of ``lookalike.contrib.oscar``: what it needs installed, and the order of
``INSTALLED_APPS`` that lets its templates replace Oscar's."""

from pathlib import Path

from django.apps import apps
from django.core.checks import Error, Warning, register

LABEL = "lookalike_oscar"

#: Templates this app replaces (each extends the one it replaces), and what is lost when
#: another app's copy is found first.
OVERRIDES = {
    "oscar/catalogue/detail.html": "the 'Similar items' widget on Oscar's product page",
    "oscar/catalogue/browse.html": "the 'Recommended for you' widget on Oscar's catalogue page",
    "visualsearch/base.html": "the plugin pages' fit to Oscar's layout",
}


def _apps_with_template(name):
    """App configs, in ``INSTALLED_APPS`` order, whose ``templates`` folder holds ``name``
    (the order in which Django's app directories loader tries them)."""
    return [
        config
        for config in apps.get_app_configs()
        if (Path(config.path) / "templates" / name).is_file()
    ]


@register()
def check_oscar_integration(app_configs=None, **kwargs):
    if not apps.is_installed("lookalike.contrib.oscar"):
        return []
    errors = [
        Error(
            f"'lookalike.contrib.oscar' needs {name!r} in INSTALLED_APPS ({why}).",
            id="lookalike_oscar.E002",
        )
        for name, why in (
            ("oscar", "django-oscar itself, whose pages it extends"),
            ("lookalike", "the catalogue adapter and card helpers"),
            ("visualsearch", "the 'Find similar' and 'Search by photo' pages"),
            ("recommendations", "the widgets and shopper events"),
        )
        if not apps.is_installed(name)
    ]
    for template, what in OVERRIDES.items():
        providers = _apps_with_template(template)
        labels = [config.label for config in providers]
        if LABEL not in labels or labels[0] == LABEL:
            continue
        first = providers[0]
        errors.append(
            Warning(
                f"'lookalike.contrib.oscar' is listed after {first.name!r} in INSTALLED_APPS, "
                f"so that app's {template} is used instead of the one with {what}.",
                hint="Move 'lookalike.contrib.oscar' before Oscar's apps (and before "
                "'visualsearch') in INSTALLED_APPS.",
                id="lookalike_oscar.W002",
            )
        )
    return errors
