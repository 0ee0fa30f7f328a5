from django.contrib import admin, messages
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from .models import Job
from .services import JobAlreadyRunning, resume


def _already_active(job):
    # One sentence per status: translators see whole sentences, not a status spliced in.
    if job.status == Job.Status.QUEUED:
        message = gettext("A %(lock_key)s job (#%(id)s) is already queued.")
    else:
        message = gettext("A %(lock_key)s job (#%(id)s) is already running.")
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


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
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
