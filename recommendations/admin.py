"""Admin for recommendations: events (read-only), trained models, blend profiles.

The model list has a "Train now" button that queues the training job and a panel whose
progress bar a small script refreshes from a JSON endpoint (``train-status/``); the
"Activate the selected version" action switches the served model (back to an older one, or
on to one trained without being served).
"""

from django.contrib import admin, messages
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from lookalike.admin_in_use import InUseAdminMixin
from lookalike.admin_lookups import SafeLookupsMixin
from lookalike.jobs.admin import JobProgressMixin, ReadOnlyChangeFormMixin

from .admin_confirmations import confirm_activation, confirm_make_default, confirmed
from .admin_tables import label, model_against_popularity, paragraphs, plain, table
from .conf import app_settings
from .forms import SEGMENT_FIELDS, BlendProfileForm
from .models import BlendProfile, Event, RecommenderModel
from .services import profiles as profiles_service
from .services import training

#: What the plugins' own ``?from=`` values mean (a shop's own values are shown as they are).
CLICK_SOURCE_LABELS = {
    "": _("None (a plain view)"),
    "similar": _("“Find similar” page"),
    "photo": _("Search by photo"),
    "similar-widget": _("“Similar items” strip"),
    "for-you": _("“For you” strip"),
}


def _source_label(source):
    return CLICK_SOURCE_LABELS.get(source, source)


class SourceFilter(admin.SimpleListFilter):
    """Where a click came from, in words; the choices are the configured click sources
    (``RECOMMENDATIONS_CLICK_SOURCES``), not a scan of every event for its values."""

    title = _("came from")
    parameter_name = "source"

    def lookups(self, request, model_admin):
        return [(value, _source_label(value)) for value in ("", *app_settings.CLICK_SOURCES)]

    def queryset(self, request, queryset):
        value = self.value()
        if value is not None and "\x00" in value:
            return queryset.none()  # PostgreSQL's text holds no NUL: no event came from there
        return queryset if value is None else queryset.filter(source=value)


@admin.register(Event)
class EventAdmin(SafeLookupsMixin, admin.ModelAdmin):
    list_display = ["created_at", "shopper", "kind", "product", "came_from", "simulated"]
    list_filter = ["kind", "simulated", SourceFilter]
    # "=client": the events of one address, by the hash shown on one of them.
    search_fields = ["session_key", "user__username", "=client"]
    search_help_text = _(
        "A session key (or its first characters), a username, or a client's hash exactly."
    )
    date_hierarchy = "created_at"
    list_select_related = ["user", "product"]
    show_full_result_count = False  # counting millions of events on every page is slow
    list_per_page = 100
    ordering = ["-created_at", "-id"]  # newest first (the created_at index)

    @admin.display(description=_("Came from"), ordering="source")
    def came_from(self, event):
        return _source_label(event.source)

    @admin.display(description=_("Shopper"))
    def shopper(self, event):
        if event.user_id:
            return str(event.user)
        return gettext("session %(key)s") % {"key": event.session_key[:12]}

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.action(permissions=["change"], description=_("Activate the selected version"))
def activate_version(modeladmin, request, queryset):
    rows = list(queryset[:2])
    if len(rows) != 1:
        modeladmin.message_user(
            request, gettext("Select exactly one version to activate."), messages.WARNING
        )
        return
    row = rows[0]
    if row.is_active:
        modeladmin.message_user(
            request,
            gettext("Version %(version)s is already active.") % {"version": row.version},
            messages.INFO,
        )
        return
    if not confirmed(request):
        return confirm_activation(modeladmin, request, row)
    try:
        training.activate_version(row)
    except FileNotFoundError:
        modeladmin.message_user(
            request,
            gettext("The artefact of version %(version)s is missing (%(path)s).")
            % {"version": row.version, "path": row.artifact_file},
            messages.ERROR,
        )
        return
    modeladmin.message_user(
        request,
        gettext("Version %(version)s is now active; serving processes switch within seconds.")
        % {"version": row.version},
        messages.SUCCESS,
    )


def _state(job):
    if job is None:
        return None
    # The page's script shows steps_label as is: the plural form is the server's to pick.
    # A job that has not counted its steps yet (queued, or reading the events) has none.
    if job.total:
        steps = ngettext("%(done)s / %(total)s step.", "%(done)s / %(total)s steps.", job.total)
        label = steps % {"done": job.done, "total": job.total}
    else:
        label = gettext("Waiting to start.") if job.is_active else ""
    return {**job.state(), "steps_label": label}


EVALUATED = {"model": _("Model"), "popularity": _("Popularity")}
_JSON_FIELDS = ("parameters", "evaluation")


@admin.register(RecommenderModel)
class RecommenderModelAdmin(
    SafeLookupsMixin, InUseAdminMixin, ReadOnlyChangeFormMixin, JobProgressMixin, admin.ModelAdmin
):
    change_list_template = "admin/recommendations/recommendermodel/change_list.html"
    list_display = [
        "version",
        "is_active",
        "trained_at",
        "n_users",
        "n_items",
        "n_interactions",
        "precision",
        "ndcg",
        "training_seconds",
    ]
    list_display_links = ["version"]
    list_filter = ["is_active"]
    actions = [activate_version]
    # Every field is read-only; the JSON fields are shown as tables (below).
    exclude = list(_JSON_FIELDS)
    readonly_fields = [
        *(f.name for f in RecommenderModel._meta.fields if f.name not in _JSON_FIELDS),
        "parameters_table",
        "evaluation_table",
    ]

    @admin.display(description=_("Parameters"))
    def parameters_table(self, row):
        params = row.parameters or {}
        return table(
            [gettext("Parameter"), gettext("Value")],
            [(label(name), plain(value)) for name, value in sorted(params.items())],
        )

    @admin.display(description=_("Evaluation"))
    def evaluation_table(self, row):
        """The held-out figures of the model and of popularity side by side, rounded, with
        the protocol they were measured by."""
        evaluation = row.evaluation or {}
        sources = [s for s in ("model", "popularity") if isinstance(evaluation.get(s), dict)]
        metrics = sorted({m for s in sources for m in evaluation[s]})
        figures = table(
            [gettext("Metric"), *(EVALUATED[s] for s in sources)],
            [(label(m), *(plain(evaluation[s].get(m)) for s in sources)) for m in metrics],
        )
        rest = [(k, v) for k, v in sorted(evaluation.items()) if k not in sources]
        notes = paragraphs(rest)
        return format_html("{}{}", figures, notes)

    @admin.display(description=_("precision@k (model / popularity)"))
    def precision(self, row):
        return model_against_popularity(row, "precision")

    @admin.display(description=_("NDCG@k (model / popularity)"))
    def ndcg(self, row):
        return model_against_popularity(row, "ndcg")

    def has_add_permission(self, request):
        return False

    # The served version cannot be deleted (InUseAdminMixin says so).
    in_use_filter = {"is_active": True}

    def in_use_message(self, row):
        return gettext(
            "Version %(version)s serves every shopper and cannot be deleted: activate another "
            "version first."
        ) % {"version": row.version}

    # -- "Train now" (JobProgressMixin) ------------------------------------------------
    job_urls = {"start": ("train/", "train"), "status": ("train-status/", "train_status")}

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "training_job": _state(training.latest_training_job()),
            "can_train": self.has_change_permission(request),
        }
        return super().changelist_view(request, extra_context)

    def start_job(self, request):
        # The form's "serve" box: left out (unticked, or a form without it), the new
        # version is stored without replacing the served one.
        return training.start_training(user=request.user, activate=request.POST.get("serve") == "1")

    def job_started_message(self, request, job):
        if job.params.get("activate"):
            message = gettext(
                "Training started (job #%(id)s); its progress shows below. The new version "
                "will serve every shopper when it is trained."
            )
        else:
            message = gettext(
                "Training started (job #%(id)s); its progress shows below. The active version "
                "keeps serving; activate the new one from the list when you choose."
            )
        return message % {"id": job.pk}

    def job_running_message(self, exc):
        return gettext("Training is already under way (job #%(id)s).") % {"id": exc.job.pk}

    def job_status(self, request):
        active = RecommenderModel.objects.filter(is_active=True).values_list("version", flat=True)
        return {"job": _state(training.latest_training_job()), "active_version": active.first()}


@admin.action(permissions=["change"], description=_("Make the selected profile the default"))
def make_default(modeladmin, request, queryset):
    profiles = list(queryset[:2])
    if len(profiles) != 1:
        modeladmin.message_user(request, gettext("Select exactly one profile."), messages.WARNING)
        return
    if profiles[0].is_default:
        modeladmin.message_user(
            request,
            gettext("“%(name)s” is already the default profile.") % {"name": profiles[0].name},
            messages.INFO,
        )
        return
    running = profiles_service.running_experiment()
    if running is not None:  # what refuse_a_new_default_while_an_experiment_runs says
        modeladmin.message_user(
            request,
            gettext(
                "The experiment “%(name)s” is running, and stopped without a winner it serves "
                "the default profile: stop it before choosing another default."
            )
            % {"name": running.name},
            messages.ERROR,
        )
        return
    if not confirmed(request):
        return confirm_make_default(modeladmin, request, profiles[0])
    profiles_service.make_default(profiles[0])
    modeladmin.message_user(
        request, gettext("“%(name)s” is now the default profile.") % {"name": profiles[0].name}
    )


@admin.register(BlendProfile)
class BlendProfileAdmin(SafeLookupsMixin, InUseAdminMixin, admin.ModelAdmin):
    form = BlendProfileForm
    list_display = [
        "name",
        "is_default",
        "visual_weight",
        "collaborative_weight",
        "affinity_weight",
        "popularity_weight",
        "recency_weight",
        "covisitation_weight",
        "diversity",
        "diversity_setting",
        "updated_at",
    ]
    actions = [make_default]
    readonly_fields = ["is_default", "created_by", "created_at", "updated_at", "metrics_summary"]
    fieldsets = [
        (
            None,
            {
                "fields": ["name", "is_default", "notes"],
                "description": _(
                    "To serve another profile by default, select it in the list and use the "
                    "action “Make the selected profile the default”, which shows both "
                    "profiles first."
                ),
            },
        ),
        (
            _("Weights"),
            {
                "fields": [
                    "visual_weight",
                    "collaborative_weight",
                    "affinity_weight",
                    "popularity_weight",
                    "recency_weight",
                    "covisitation_weight",
                ],
                "description": _("Only the proportions matter; at least one must be above zero."),
            },
        ),
        (
            _("Weights for a new product"),
            {
                "fields": SEGMENT_FIELDS["cold_item"],
                "description": _(
                    "Used to score a product the active model was not trained on (nobody had "
                    "interacted with it yet). A blank field keeps the weight above."
                ),
            },
        ),
        (
            _("Weights for a new shopper"),
            {
                "fields": SEGMENT_FIELDS["new_shopper"],
                "description": _(
                    "Used in “For you” for a shopper with at most two events, for "
                    "the products that are not new. A blank field keeps the weight above."
                ),
            },
        ),
        (_("Diversity"), {"fields": ["diversity", "diversity_param"]}),
        (_("Rules"), {"fields": ["in_stock_only", "exclude_purchased", "exclude_current"]}),
        (_("Evaluation"), {"fields": ["metrics_summary"]}),
        (None, {"fields": ["created_by", "created_at", "updated_at"]}),
    ]

    @admin.display(description=_("Figures"))
    def metrics_summary(self, profile):
        """The offline figures the profile was published with (read-only: notebook 02
        measures them), rounded, one row each."""
        metrics = profile.metrics if isinstance(profile.metrics, dict) else {}
        return table(
            [gettext("Figure"), gettext("Value")],
            [(label(key), plain(value)) for key, value in sorted(metrics.items())],
        )

    @admin.display(
        description=BlendProfile._meta.get_field("diversity_param").verbose_name,
        ordering="diversity_param",
    )
    def diversity_setting(self, profile):
        return profile.diversity_setting_display()

    # The default profile serves every widget (InUseAdminMixin says so).
    in_use_filter = {"is_default": True}

    def in_use_message(self, profile):
        return gettext(
            "“%(name)s” is the default profile and cannot be deleted: make another profile "
            "the default first."
        ) % {"name": profile.name}

    def save_model(self, request, obj, form, change):
        if not change and request.user.is_authenticated:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)


# Experiments have their own admin module; importing it registers it.
from .experiments import admin as experiments_admin  # noqa: E402, F401
