"""Background jobs shared by the plugin apps (visual reindex, recommender training).

A job is a database row so that any process can run it (the demo's ``run_jobs``
worker, a Celery worker on another machine, or the test process) and the admin can
show its progress by reading the row.
"""

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import translation
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _


class Job(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")

    ACTIVE = (Status.QUEUED, Status.RUNNING)
    #: How many errors ``errors`` keeps; ``error_count`` counts them all.
    MAX_STORED_ERRORS = 50
    #: Set in ``result`` when a job failed because its process went away (reaped, or stopped
    #: with its worker): :mod:`lookalike.jobs.takeover` resumes only those on its own.
    WORKER_LOST = "worker_lost"
    #: Set in ``result`` on such a job once it was resumed on its own: the new job's id.
    TAKEN_OVER_BY = "taken_over_by"

    handler = models.CharField(
        _("handler"),
        max_length=200,
        help_text=_("Dotted path of the function decorated with @job_handler."),
    )
    lock_key = models.CharField(
        _("lock key"), max_length=100, help_text=_("Jobs sharing a key run one at a time.")
    )
    # DjangoJSONEncoder: product keys may be UUIDs, figures decimals.
    params = models.JSONField(_("params"), default=dict, blank=True, encoder=DjangoJSONEncoder)
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.QUEUED
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    heartbeat_at = models.DateTimeField(_("heartbeat at"), null=True, blank=True)
    worker = models.CharField(_("worker"), max_length=100, blank=True)
    done = models.PositiveIntegerField(_("done"), default=0)
    total = models.PositiveIntegerField(_("total"), default=0)
    message = models.TextField(_("message"), blank=True)
    language = models.CharField(
        _("language"),
        max_length=15,
        blank=True,
        help_text=_(
            "The language of the request that queued the job: its progress, summary and "
            "failures are written in it, whichever worker runs it."
        ),
    )
    error_count = models.PositiveIntegerField(_("error count"), default=0)
    errors = models.JSONField(
        _("errors"),
        default=list,
        blank=True,
        encoder=DjangoJSONEncoder,
        help_text=_("The first errors met, as {item, reason} objects."),
    )
    result = models.JSONField(_("result"), default=dict, blank=True, encoder=DjangoJSONEncoder)
    resumed_from = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="resumed_by",
        verbose_name=_("resumed from"),
    )

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("job")
        verbose_name_plural = _("jobs")
        indexes = [models.Index(fields=["status", "lock_key"])]

    def __str__(self):
        return gettext("%(key)s #%(id)s (%(status)s)") % {
            "key": self.lock_key,
            "id": self.pk,
            "status": self.get_status_display(),
        }

    def in_its_language(self):
        """A context for writing the job's messages: in the language it was asked for in
        (the site's ``LANGUAGE_CODE`` when it was queued outside a request)."""
        return translation.override(self.language or settings.LANGUAGE_CODE)

    @property
    def percent(self):
        if not self.total:
            return 100 if self.status == self.Status.SUCCEEDED else 0
        return min(100, round(100 * self.done / self.total))

    @property
    def is_active(self):
        return self.status in self.ACTIVE

    def state(self):
        """What the admin pages' progress bars poll: a JSON-ready summary of the row."""
        return {
            "id": self.pk,
            "status": self.status,
            "status_label": self.get_status_display(),
            "active": self.is_active,
            "done": self.done,
            "total": self.total,
            "percent": self.percent,
            "message": self.message,
            "error_count": self.error_count,
            "result": self.result,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }
