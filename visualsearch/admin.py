"""Admin for visual search: product actions and the "Visual index" page.

The two product actions are module-level functions for the shop's product admin to list
in its ``actions`` (this app never imports the shop)::

    from visualsearch.admin import compute_embeddings, find_similar_to_selected

    class ProductAdmin(admin.ModelAdmin):
        actions = [compute_embeddings, find_similar_to_selected]

The "Visual index" page is the change list of :class:`~visualsearch.models.IndexJob`: the
index counts per encoder, buttons that start a reindex, and the reindex jobs with a
progress bar that a small script refreshes from a JSON endpoint every second.
"""

from django.contrib import admin, messages
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from lookalike.admin_lookups import SafeLookupsMixin
from lookalike.catalogue import get_adapter
from lookalike.jobs.admin import JobProgressMixin
from lookalike.jobs.models import Job
from lookalike.jobs.services import JobAlreadyRunning

from . import indexing
from .conf import app_settings
from .indexing import jobs as index_jobs
from .models import IndexFailure, IndexJob, ProductEmbedding

REINDEX_PERMISSION = "visualsearch.reindex"
MODES = {"stale": _("Reindex stale"), "all": _("Reindex all")}


def _already_running(exc):
    if exc.job.status == Job.Status.QUEUED:
        message = gettext(
            "A visual index job is already running (#%(id)s, queued); wait for it to finish."
        )
    else:
        message = gettext(
            "A visual index job is already running (#%(id)s, running); wait for it to finish."
        )
    return message % {"id": exc.job.pk}


def error_count_label(count):
    return ngettext("%(count)s error", "%(count)s errors", count) % {"count": count}


def _job_link(job):
    url = reverse("admin:visualsearch_indexjob_changelist")
    return format_html('<a href="{}">{}</a>', url, gettext("job #%(id)s") % {"id": job.pk})


@admin.action(permissions=["change"], description=_("Compute visual embeddings for selected"))
def compute_embeddings(modeladmin, request, queryset):
    # A variant is embedded as the product that stands for it (an Oscar child's parent).
    ids = list(
        dict.fromkeys(
            get_adapter().get_canonical_keys(queryset.values_list("pk", flat=True)).values()
        )
    )
    try:
        job = index_jobs.start_reindex("ids", ids=ids, user=request.user)
    except JobAlreadyRunning as exc:
        modeladmin.message_user(request, _already_running(exc), messages.WARNING)
        return None
    except ValueError as exc:
        modeladmin.message_user(request, str(exc), messages.ERROR)
        return None
    job.refresh_from_db()
    count = len(ids)
    if job.status == Job.Status.SUCCEEDED:
        text = ngettext(
            "Computing visual embeddings for {count} product: {job} finished.",
            "Computing visual embeddings for {count} products: {job} finished.",
            count,
        )
    elif job.status == Job.Status.FAILED:
        text = ngettext(
            "Computing visual embeddings for {count} product: {job} failed.",
            "Computing visual embeddings for {count} products: {job} failed.",
            count,
        )
    elif job.status == Job.Status.RUNNING:
        text = ngettext(
            "Computing visual embeddings for {count} product: {job} started.",
            "Computing visual embeddings for {count} products: {job} started.",
            count,
        )
    else:
        text = ngettext(
            "Computing visual embeddings for {count} product: {job} queued.",
            "Computing visual embeddings for {count} products: {job} queued.",
            count,
        )
    level = messages.ERROR if job.status == Job.Status.FAILED else messages.SUCCESS
    modeladmin.message_user(request, format_html(text, count=count, job=_job_link(job)), level)
    return None


@admin.action(permissions=["view"], description=_("Find similar to selected"))
def find_similar_to_selected(modeladmin, request, queryset):
    adapter = get_adapter()
    first = queryset.filter(pk__in=adapter.get_queryset().values("pk")).first()
    target = first.pk if first is not None else _stood_for(adapter, queryset)
    if target is None:
        modeladmin.message_user(
            request, gettext("Only active products have a similar-products page."), messages.WARNING
        )
        return None
    count = queryset.count()
    if count > 1:
        modeladmin.message_user(
            request,
            ngettext(
                "%(count)s product was selected; showing products similar to the first, "
                "“%(product)s”.",
                "%(count)s products were selected; showing products similar to the first, "
                "“%(product)s”.",
                count,
            )
            % {"count": count, "product": first or queryset.first()},
            messages.INFO,
        )
    return HttpResponseRedirect(reverse("visualsearch:similar", args=[target]))


def _stood_for(adapter, queryset):
    """The key of a product that one of the selected ones stands for (an Oscar variant's
    parent, whose page a variant's address redirects to), or ``None``."""
    keys = list(queryset.values_list("pk", flat=True)[:100])
    canonical = adapter.get_canonical_keys(keys)
    return next((canonical[k] for k in keys if canonical.get(k, k) != k), None)


def index_counts():
    """Index counts of the configured encoder and of every encoder with stored vectors."""
    current = app_settings.ENCODER
    names = [current] + sorted(
        set(ProductEmbedding.objects.values_list("encoder", flat=True).distinct()) - {current}
    )
    rows = []
    for name in names:
        try:
            counts = indexing.index_status(encoder=name)
        except ImproperlyConfigured:
            # Vectors of an encoder that is no longer registered: shown, but not counted.
            counts = dict.fromkeys(
                ("indexed", "stale", "missing", "failed", "total", "no_image"), "—"
            )
        rows.append({"encoder": name, "current": name == current, **counts})
    return rows


@admin.register(IndexJob)
class IndexJobAdmin(SafeLookupsMixin, JobProgressMixin, admin.ModelAdmin):
    """The "Visual index" page; read-only rows, work started through its buttons."""

    change_list_template = "admin/visualsearch/indexjob/change_list.html"
    list_display = [
        "id",
        "status_badge",
        "mode",
        "created_by",
        "created_at",
        "progress",
        "errors_column",
        "resume_button",
    ]
    list_display_links = None
    list_select_related = ["created_by"]
    list_per_page = 25
    actions = None

    def get_queryset(self, request):
        return super().get_queryset(request).filter(lock_key=index_jobs.LOCK_KEY)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        return self.has_reindex_permission(request) or super().has_view_permission(request, obj)

    def has_reindex_permission(self, request):
        return request.user.is_active and request.user.has_perm(REINDEX_PERMISSION)

    # -- columns ---------------------------------------------------------------------
    @admin.display(description=_("Status"), ordering="status")
    def status_badge(self, job):
        # Not a live region of its own: the page's one region (#vs-announce) says which
        # job changed, where a region per row would read bare statuses.
        return format_html(
            '<span class="vs-status vs-status-{}" data-job-status="{}">{}</span>',
            job.status,
            job.pk,
            job.get_status_display(),
        )

    @admin.display(description=_("Mode"))
    def mode(self, job):
        mode = job.params.get("mode", "")
        ids = job.params.get("ids") or []
        if mode == "ids":
            return ngettext("%(count)s selected", "%(count)s selected", len(ids)) % {
                "count": len(ids)
            }
        return index_jobs.MODE_LABELS.get(mode, mode) or "—"

    @admin.display(description=_("Progress"))
    def progress(self, job):
        return format_html(
            '<div class="vs-progress" data-job-id="{}" data-active="{}">'
            '<div class="vs-bar" role="progressbar" aria-label="{}" aria-valuemin="0" '
            'aria-valuemax="100" aria-valuenow="{}" aria-valuetext="{}">'
            '<span style="width:{}%"></span></div>'
            '<span class="vs-count">{} / {}</span></div>',
            job.pk,
            "1" if job.is_active else "0",
            gettext("Progress of job #%(id)s") % {"id": job.pk},
            job.percent,
            gettext("%(done)s of %(total)s") % {"done": job.done, "total": job.total},
            job.percent,
            job.done,
            job.total,
        )

    @admin.display(description=_("Result"))
    def errors_column(self, job):
        message = format_html(
            '<span class="vs-message" data-job-message="{}">{}</span>', job.pk, job.message
        )
        if not job.error_count:
            return message
        items = format_html_join(
            "",
            "<li>{}</li>",
            (
                (
                    gettext("%(item)s: %(reason)s")
                    % {"item": e.get("item"), "reason": e.get("reason")},
                )
                for e in job.errors[:10]
            ),
        )
        return format_html(
            '{}<details><summary data-job-errors="{}">{}</summary><ul>{}</ul></details>',
            message,
            job.pk,
            error_count_label(job.error_count),
            items,
        )

    @admin.display(description=_("Action"))
    def resume_button(self, job):
        if job.status != Job.Status.FAILED:
            return ""
        return format_html(
            '<button type="submit" class="button" form="vs-resume-form" name="job" '
            'value="{}" aria-label="{}">{}</button>',
            job.pk,
            gettext("Resume job #%(id)s") % {"id": job.pk},
            gettext("Resume"),
        )

    # -- the job panel (JobProgressMixin) ----------------------------------------------
    job_urls = {
        "start": ("start/", "start"),
        "resume": ("resume/", "resume"),
        "status": ("status/", "status"),
    }

    def has_job_permission(self, request):
        return self.has_reindex_permission(request)

    def start_job(self, request):
        mode = request.POST.get("mode")
        if mode not in MODES:
            self.message_user(request, gettext("Unknown reindex mode."), messages.ERROR)
            return None
        try:
            return index_jobs.start_reindex(mode, user=request.user)
        except ValueError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return None

    def job_started_message(self, request, job):
        mode = MODES[request.POST["mode"]]
        return gettext("%(mode)s: job #%(id)s started.") % {"mode": mode, "id": job.pk}

    def job_running_message(self, exc):
        return _already_running(exc)

    def job_status(self, request):
        """Progress of the latest jobs and the index counts, polled by the page's script."""
        jobs = list(self.get_queryset(request).order_by("-created_at")[:50])
        data = {
            "active": any(job.is_active for job in jobs),
            # The page's script shows error_label as is: plurals are the server's to translate.
            "jobs": [
                {**job.state(), "error_label": error_count_label(job.error_count)} for job in jobs
            ],
        }
        # Counting the index costs more than reading a few rows: only on request (the
        # page asks when a job has finished).
        if request.GET.get("counts"):
            data["counts"] = index_counts()
        return data

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "title": gettext("Visual index"),
            "index_counts": index_counts(),
            "can_reindex": self.has_reindex_permission(request),
            "modes": MODES,
            "encoder": app_settings.ENCODER,
        }
        return super().changelist_view(request, extra_context)


@admin.register(IndexFailure)
class IndexFailureAdmin(SafeLookupsMixin, admin.ModelAdmin):
    """The photos a reindex could not embed, each with its reason: what the "Failed" count
    of the "Visual index" page stands for. Read-only; deleting a row makes the next stale
    reindex try that photo again (after its file was repaired in place, say)."""

    list_display = ["product", "encoder", "image_name", "reason", "failed_at"]
    list_filter = ["encoder"]
    search_fields = ["image_name", "reason"]
    list_select_related = ["product"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
