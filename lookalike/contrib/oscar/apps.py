from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class LookalikeOscarConfig(AppConfig):
    """Lookalike inside django-oscar: the catalogue adapter
    (:class:`~lookalike.contrib.oscar.adapter.OscarCatalogueAdapter`), shopper events from
    Oscar's signals, and template overrides that put the widgets on Oscar's product and
    catalogue pages. List it before Oscar's apps in ``INSTALLED_APPS`` so that its
    templates win (the system checks say so when it is not)."""

    name = "lookalike.contrib.oscar"
    label = "lookalike_oscar"
    verbose_name = _("Lookalike for django-oscar")

    def ready(self):
        from django.apps import apps

        # Importing the module registers the system checks.
        from . import checks  # noqa: F401

        if apps.is_installed("recommendations") and apps.is_installed("oscar"):
            from . import receivers

            receivers.connect()
