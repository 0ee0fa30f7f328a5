from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class JobsConfig(AppConfig):
    """Background jobs shared by the plugin apps.

    Labelled ``lookalike_jobs`` so that it cannot clash with a host project's own ``jobs``
    app; its table is ``lookalike_jobs_job``.
    """

    name = "lookalike.jobs"
    label = "lookalike_jobs"
    verbose_name = _("Background jobs")
    default_auto_field = "django.db.models.BigAutoField"
