from django.contrib import admin, messages

from .models import Job
from .services import JobAlreadyRunning, resume


@admin.action(permissions=["change"], description="Resume selected failed jobs")
def resume_jobs(modeladmin, request, queryset):
    for job in queryset.filter(status=Job.Status.FAILED):
        try:
            new = resume(job, user=request.user)
        except JobAlreadyRunning as exc:
            modeladmin.message_user(request, str(exc), messages.WARNING)
        else:
            modeladmin.message_user(request, f"Job #{job.pk} resumed as #{new.pk}.")


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
