"""Change lists that answer a bad filter in the address with Django's "?e=1", never a 500.

Django's admin refuses lookups it does not know with a redirect to ``?e=1`` (the list,
unfiltered, with a note), but a known lookup with a value the database or Python cannot
take gets through to the query: ``?created_at__year=99999`` (a year out of range),
``?status__exact=%00`` (PostgreSQL refuses NUL in text), a date drill-down too large for a
C integer. Those raised a 500 from the template's rendering, where the queryset is run.
:class:`SafeLookupsMixin` checks the values it can before the list is built, and renders the
list inside the view, so that what the database refuses is answered the same way.
"""

from __future__ import annotations

import logging

from django.contrib.admin.views.main import ERROR_FLAG
from django.db import DataError
from django.http import HttpResponseRedirect
from django.template.response import SimpleTemplateResponse
from django.utils.translation import gettext

__all__ = ["SafeLookupsMixin"]

logger = logging.getLogger(__name__)

#: A date drill-down's parts and the largest value each may take.
_DATE_PARTS = {"year": 9999, "month": 12, "day": 31}


class SafeLookupsMixin:
    """For a :class:`~django.contrib.admin.ModelAdmin`: a change list whose filter values
    cannot be queried redirects to ``?e=1``, as Django does for unknown lookups."""

    def changelist_view(self, request, extra_context=None):
        if _unqueryable(request.GET):
            return self._refused(request)
        try:
            response = super().changelist_view(request, extra_context)
            if hasattr(response, "render") and not response.is_rendered:
                response.render()  # the queryset runs here: its errors are caught too
        except (DataError, ValueError, OverflowError):
            logger.info("A change list's filter could not be queried", exc_info=True)
            return self._refused(request)
        return response

    def _refused(self, request):
        if ERROR_FLAG in request.GET:  # the unfiltered list failed too: Django's own page
            return SimpleTemplateResponse(
                "admin/invalid_setup.html", {"title": gettext("Database error")}
            )
        return HttpResponseRedirect(f"{request.path}?{ERROR_FLAG}=1")


def _unqueryable(params):
    """Whether a filter value cannot reach the database: a NUL character, or a date part
    (``__year``, ``__month``, ``__day``) that is not a whole number in its range."""
    for key, values in params.lists():
        for value in values:
            if "\x00" in value:
                return True
            part = key.rpartition("__")[2]
            if part in _DATE_PARTS and not (
                value.isascii() and value.isdigit() and 1 <= int(value[:5]) <= _DATE_PARTS[part]
            ):
                return True
    return False
