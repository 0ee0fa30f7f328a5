from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class VisualSearchConfig(AppConfig):
    name = "visualsearch"
    verbose_name = _("Visual search")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Importing checks registers the system checks.
        from . import checks, signals  # noqa: F401

        signals.connect()
