"""System checks of ``lookalike.contrib.oscar``: what it needs installed, the order of
``INSTALLED_APPS`` that lets its templates replace Oscar's, a project's own copy of those
templates without the widgets, and the catalogue adapter that reads Oscar's product."""

import re
from pathlib import Path

from django.apps import apps
from django.core.checks import Error, Warning, register

LABEL = "lookalike_oscar"
ADAPTER = "lookalike.contrib.oscar.adapter.OscarCatalogueAdapter"

#: Templates this app replaces (each extends the one it replaces), and what is lost when
#: another app's copy is found first.
OVERRIDES = {
    "oscar/catalogue/detail.html": "the 'Similar items' widget on Oscar's product page",
    "oscar/catalogue/browse.html": "the 'Recommended for you' widget on Oscar's catalogue page",
    "visualsearch/base.html": "the plugin pages' fit to Oscar's layout",
}


#: The widgets' template tags, one of which the page each template renders must hold.
WIDGET_TAGS = {
    "oscar/catalogue/detail.html": ("similar_items", "recommended_for_you"),
    "oscar/catalogue/browse.html": ("recommended_for_you",),
}


def fields_adapter_errors(adapter, errors):
    """``errors``, the catalogue adapter's own check messages, or one error in their place
    when they are the errors of the default adapter (:class:`FieldsCatalogueAdapter`) on
    Oscar's product: that keeps its images, categories, prices and stock in models of their
    own, and six errors about ``LOOKALIKE_PRODUCT_FIELDS`` would send a newcomer to fill
    that setting in, where the adapter to name is Oscar's."""
    from lookalike.catalogue import FieldsCatalogueAdapter
    from lookalike.conf import app_settings

    serious = [message for message in errors if message.is_serious()]
    if type(adapter) is not FieldsCatalogueAdapter or not serious:
        return errors
    model = adapter.get_product_model()._meta
    if model.label_lower != "catalogue.product":  # a forked catalogue app keeps the label
        return errors
    return [
        Error(
            f"LOOKALIKE_CATALOGUE_ADAPTER is {app_settings.CATALOGUE_ADAPTER!r}, which reads "
            f"the product fields named in LOOKALIKE_PRODUCT_FIELDS ({len(serious)} of them "
            f"do not fit {model.label}), but Oscar's product keeps its images, categories, "
            "prices and stock in models of their own.",
            hint=f"Set LOOKALIKE_CATALOGUE_ADAPTER = {ADAPTER!r}, which reads Oscar's "
            "models; LOOKALIKE_PRODUCT_FIELDS is then not read.",
            id="lookalike_oscar.E003",
        )
    ]


def _apps_with_template(name):
    """App configs, in ``INSTALLED_APPS`` order, whose ``templates`` folder holds ``name``
    (the order in which Django's app directories loader tries them)."""
    return [
        config
        for config in apps.get_app_configs()
        if (Path(config.path) / "templates" / name).is_file()
    ]


def _extends_chain(name):
    """The Django templates rendering ``name`` reads: the one found first, then each it
    extends, found as rendering finds them (a template extending its own name gets the
    next one found); ``None`` when a parent is chosen at run time."""
    from django.template import Context
    from django.template.base import Template
    from django.template.loader import get_template
    from django.template.loader_tags import ExtendsNode

    template = getattr(get_template(name), "template", None)
    if not isinstance(template, Template):
        return None  # another template engine's
    chain = [template]
    while extends := template.nodelist.get_nodes_by_type(ExtendsNode):
        parent = extends[0].parent_name
        if parent.filters or not isinstance(parent.var, str) or len(chain) > 20:
            return None
        template, _ = template.engine.find_template(
            parent.resolve(Context()), skip=[t.origin for t in chain]
        )
        chain.append(template)
    return chain


def _copy_without_widgets(name):
    """A warning when the template Django finds first for ``name`` is a copy (in
    ``TEMPLATES``' ``DIRS``, the usual way to customise Oscar's) that neither holds the
    widgets' tags nor extends the app's template: the widgets vanish without an error."""
    tags = WIDGET_TAGS[name]
    try:
        chain = _extends_chain(name)
    except Exception:  # a template that does not load is Django's own error to report
        return []
    pattern = re.compile(r"\{%\s*(?:" + "|".join(tags) + r")\b")
    if chain is None or any(pattern.search(template.source) for template in chain):
        return []
    return [
        Warning(
            f"Django finds {name} first in {chain[0].origin.name!r}, which holds no "
            f"{' or '.join(tags)} tag and does not extend the one of "
            f"'lookalike.contrib.oscar': {OVERRIDES[name]} is missing.",
            hint=f"Copy the block of lookalike/contrib/oscar/templates/{name} into yours "
            "({% load recommendations %} and its tags), or have yours extend "
            f"'{name}' (the app's is found next) and keep {{{{ block.super }}}}.",
            id="lookalike_oscar.W003",
        )
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
            if template in WIDGET_TAGS:
                errors.extend(_copy_without_widgets(template))
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
