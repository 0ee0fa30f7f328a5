from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class LookalikeConfig(AppConfig):
    """The pieces both plugin apps share: the catalogue adapter and its system checks, the
    ``{% load lookalike %}`` template helpers and the default product card template."""

    name = "lookalike"
    verbose_name = _("Lookalike")

    def ready(self):
        from django.core.signals import request_finished, request_started

        # Importing ``checks`` registers the system checks; ``requestcache`` opens and
        # closes each request's scope (values computed once per request).
        from . import checks, requestcache  # noqa: F401

        request_started.connect(requestcache.start, dispatch_uid="lookalike.requestcache.start")
        request_finished.connect(requestcache.end, dispatch_uid="lookalike.requestcache.end")
        # Saving a product or a category, or changing a product's state through a model
        # the adapter depends on, makes the values kept per process stale.
        from .changes import watch_catalogue

        watch_catalogue()
