"""A form's fields, rendered once per process while the shopper has not filled it in.

Every "find similar" page shows the same filter form, and until a shopper sets a filter its
fields render to the same markup on every page: rendering them through Django's widget
templates cost about 0.7 ms a page, a tenth of a "find similar" page seen before. A form
that is not filled in (no value for any of its fields, no error) is rendered once per
process, language, template and form class (its prefix and ``auto_id`` too), under the
catalogue's stamp (:data:`lookalike.catalogue.CATALOGUE`: a form may list categories), and
reused; a filled-in form is rendered each time.

The template is rendered with ``form`` alone, as a card is with its product: a filter
template that needs more than its form is rendered each time by ``LOOKALIKE_REUSE_CARDS =
False``, with the page's whole context, as an ``{% include %}`` would.
"""

from __future__ import annotations

from django.template.loader import render_to_string
from django.utils.translation import get_language

from .conf import app_settings
from .stamps import Stamped

__all__ = ["FORMS", "filled_in", "render_form_fields"]

#: Rendered forms not filled in, under the catalogue's stamp: one per form, template and
#: language.
FORMS = Stamped("lookalike.catalogue", limit=256)


def filled_in(form) -> bool:
    """Whether the shopper gave ``form`` a value for any field, or it has errors."""
    if not form.is_bound:
        return False
    data = form.data
    if any(data.get(form.add_prefix(name)) not in (None, "") for name in form.fields):
        return True
    return bool(form.errors)


def render_form_fields(form, template_name, context=None):
    """The HTML of ``template_name`` rendered for ``form`` (a safe string).

    ``context`` (the page's, flattened) is used only when forms are not reused
    (``LOOKALIKE_REUSE_CARDS = False``); otherwise the template sees ``form`` alone.
    """
    if not app_settings.REUSE_CARDS:
        return render_to_string(template_name, {**(context or {}), "form": form})
    if filled_in(form):
        return render_to_string(template_name, {"form": form})
    key = (
        template_name,
        type(form).__module__,
        type(form).__qualname__,
        form.prefix,
        form.auto_id,
        get_language(),
    )
    return FORMS.get(key, lambda: render_to_string(template_name, {"form": form}))
