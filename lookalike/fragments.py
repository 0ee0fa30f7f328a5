"""A form's fields, rendered once per process while the shopper has not filled it in.

Every "find similar" page shows the same filter form, and until a shopper sets a filter its
fields render to the same markup on every page: rendering them through Django's widget
templates cost about 0.7 ms a page, a tenth of a "find similar" page seen before. A form
that is not filled in (no field with a value to show, no error) is rendered once per
process, language, template and form class (with its prefix and the constructor options
that change markup), under the catalogue's stamp (:data:`lookalike.catalogue.CATALOGUE`: a
form may list categories), and reused; a filled-in form is rendered each time. A form is
kept only if its fields and choices depend on its class and the catalogue alone, not on
other constructor arguments, as the plugin's filter forms do.

The template is rendered with ``form`` alone, as a card is with its product, so kept
markup never holds a shopper's values, a CSRF token or another page's product. A filter
template that needs more of the page sets ``LOOKALIKE_REUSE_FORMS = False``: it is then
rendered each time with the page's whole context, as an ``{% include %}`` would be.
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


def _blank(value) -> bool:
    """Whether a field's value shows nothing (``0`` is a value; ``False`` is an unticked
    box)."""
    if value is None or value is False:
        return True
    return isinstance(value, str | list | tuple) and len(value) == 0


def filled_in(form) -> bool:
    """Whether ``form`` would show anything of its own: a value in any field (as its
    widget reads it, so a multiple choice or a split date counts, and so does an unbound
    form's ``initial``), or an error."""
    if any(not _blank(field.value()) for field in form):
        return True
    return form.is_bound and bool(form.errors)


def render_form_fields(form, template_name, context=None):
    """The HTML of ``template_name`` rendered for ``form`` (a safe string).

    ``context`` (the page's, flattened) is used only when forms are not reused
    (``LOOKALIKE_REUSE_FORMS = False``); otherwise the template sees ``form`` alone.
    """
    if not app_settings.REUSE_FORMS:
        return render_to_string(template_name, {**(context or {}), "form": form})
    if filled_in(form):
        return render_to_string(template_name, {"form": form})
    key = (
        template_name,
        type(form).__module__,
        type(form).__qualname__,
        form.prefix,
        form.auto_id,
        form.label_suffix,
        form.use_required_attribute,
        get_language(),
    )
    return FORMS.get(key, lambda: render_to_string(template_name, {"form": form}))
