"""The jobs' admin: the job list, and :class:`JobProgressMixin`, the background-job panel
that the "Visual index" page and the recommender's "Train now" share."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET, require_POST

from ..admin_in_use import InUseAdminMixin
from ..admin_lookups import SafeLookupsMixin
from ..conf import app_settings
from ..keys import row_id
from .models import Job
from .services import JobAlreadyRunning, resume


def _already_active(job):
    # One sentence per status: translators see whole sentences, not a status spliced in.
    if job.status == Job.Status.QUEUED:
        message = gettext("Job #%(id)s (%(lock_key)s) is already queued.")
    else:
        message = gettext("Job #%(id)s (%(lock_key)s) is already running.")
    return message % {"lock_key": job.lock_key, "id": job.pk}


@admin.action(permissions=["change"], description=_("Resume selected failed jobs"))
def resume_jobs(modeladmin, request, queryset):
    for job in queryset.filter(status=Job.Status.FAILED):
        try:
            new = resume(job, user=request.user)
        except JobAlreadyRunning as exc:
            modeladmin.message_user(request, _already_active(exc.job), messages.WARNING)
        else:
            modeladmin.message_user(
                request, gettext("Job #%(id)s resumed as #%(new)s.") % {"id": job.pk, "new": new.pk}
            )


class ReadOnlyChangeFormMixin:
    """A change page whose fields are all read-only: no Save buttons that would save
    nothing (its actions, on the list, change what can be changed)."""

    def render_change_form(self, request, context, add=False, change=False, **kwargs):
        if change:
            context.update(
                show_save=False, show_save_and_continue=False, show_save_and_add_another=False
            )
        return super().render_change_form(request, context, add=add, change=change, **kwargs)


@admin.register(Job)
class JobAdmin(SafeLookupsMixin, InUseAdminMixin, ReadOnlyChangeFormMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "lock_key",
        "status",
        "done",
        "total",
        "error_count",
        "created_by",
        "created_at",
    ]
    list_filter = ["status", "lock_key"]
    actions = [resume_jobs]
    readonly_fields = [f.name for f in Job._meta.fields]

    def has_add_permission(self, request):
        return False

    # A queued or running job holds its lock and has a worker on it: it ends first.
    in_use_filter = {"status__in": list(Job.ACTIVE)}

    def in_use_message(self, job):
        # One sentence per status: a translated status is not spliced in, nor lower-cased.
        if job.status == Job.Status.QUEUED:
            message = gettext(
                "Job #%(id)s is queued and cannot be deleted: it ends first (a job no worker "
                "starts is marked failed within minutes)."
            )
        else:
            message = gettext(
                "Job #%(id)s is running and cannot be deleted: it ends first (a job whose "
                "worker died is marked failed within minutes)."
            )
        return message % {"id": job.pk}


class JobProgressMixin:
    """A ``ModelAdmin`` page with a background job: a POST view that starts it, a JSON view
    that the page's script polls for progress and, when :attr:`job_urls` names it, a POST
    view that resumes a failed job. Each answers as the admin does: ``PermissionDenied``
    without the permission, then a message and a redirect to the change list.

    Subclasses implement :meth:`start_job`, :meth:`job_started_message`,
    :meth:`job_running_message` and :meth:`job_status`.
    """

    #: ``{view: (path, URL name suffix)}`` for ``"start"``, ``"status"`` and, optionally,
    #: ``"resume"``; the URL names are ``<app label>_<model name>_<suffix>``.
    job_urls = {"start": ("start/", "start"), "status": ("status/", "status")}

    def has_job_permission(self, request):
        """May ``request`` start (and resume) the job?"""
        return self.has_change_permission(request)

    def start_job(self, request):
        """Queue the job for ``request``; the job, or ``None`` after telling the user why
        not. ``JobAlreadyRunning`` is answered by :meth:`job_running_message`."""
        raise NotImplementedError

    def job_started_message(self, request, job):
        raise NotImplementedError

    def job_running_message(self, exc):
        """What to tell the user when a job of the key is already queued or running."""
        raise NotImplementedError

    def job_status(self, request):
        """The JSON the page's script polls."""
        raise NotImplementedError

    def get_urls(self):
        wrap = self.admin_site.admin_view
        views = {"start": self.job_start_view, "status": self.job_status_view}
        views["resume"] = self.job_resume_view
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path(route, wrap(views[view]), name=f"{prefix}_{suffix}")
            for view, (route, suffix) in self.job_urls.items()
        ] + super().get_urls()

    def _changelist(self):
        return HttpResponseRedirect(
            reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist")
        )

    def job_start_view(self, request):
        if request.method in ("GET", "HEAD"):  # a reload of the page the POST answered
            return self._changelist()
        return require_POST(self._start_job)(request)

    def _start_job(self, request):
        if not self.has_job_permission(request):
            raise PermissionDenied
        try:
            job = self.start_job(request)
        except JobAlreadyRunning as exc:
            self.message_user(request, self.job_running_message(exc), messages.WARNING)
        else:
            if job is not None and not self._failed_at_once(request, job):
                self.message_user(request, self.job_started_message(request, job), messages.SUCCESS)
        return self._changelist()

    def _failed_at_once(self, request, job):
        """Whether ``job`` failed as it was queued (no broker to send it to), said so as an
        error rather than "started". (An inline job has run by now: its outcome is its own.)"""
        if app_settings.JOBS_BACKEND != "celery":
            return False
        job.refresh_from_db(fields=["status", "message"])
        if job.status != Job.Status.FAILED:
            return False
        self.message_user(
            request,
            gettext("Job #%(id)s could not start: %(message)s")
            % {"id": job.pk, "message": job.message},
            messages.ERROR,
        )
        return True

    def job_resume_view(self, request):
        if request.method in ("GET", "HEAD"):
            return self._changelist()
        return require_POST(self._resume_job)(request)

    def _resume_job(self, request):
        if not self.has_job_permission(request):
            raise PermissionDenied
        # Anything but a row id is a job that does not exist: a 404, not a 500.
        job = get_object_or_404(self.get_queryset(request), pk=row_id(request.POST.get("job")) or 0)
        if job.status != Job.Status.FAILED:
            self.message_user(
                request, gettext("Job #%(id)s has not failed.") % {"id": job.pk}, messages.WARNING
            )
            return self._changelist()
        try:
            new = resume(job, user=request.user)
        except JobAlreadyRunning as exc:
            self.message_user(request, self.job_running_message(exc), messages.WARNING)
        else:
            if self._failed_at_once(request, new):
                return self._changelist()
            self.message_user(
                request,
                gettext("Job #%(id)s resumed as #%(new)s.") % {"id": job.pk, "new": new.pk},
                messages.SUCCESS,
            )
        return self._changelist()

    def job_status_view(self, request):
        return require_GET(self._job_status)(request)

    def _job_status(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        return JsonResponse(self.job_status(request))
