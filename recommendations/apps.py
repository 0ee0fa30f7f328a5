from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class RecommendationsConfig(AppConfig):
    name = "recommendations"
    verbose_name = _("Recommendations")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Importing the module registers the system checks.
        from . import caching, checks  # noqa: F401

        # Saving a profile or an experiment makes every process's copies stale.
        caching.connect()
