"""Admin of experiments: arms edited inline while a draft, "Start" and "Stop" buttons on
the change page (stopping asks for the winner, or none), and the figures per arm with
their charts (:mod:`.report`). Thin: every rule is in :mod:`.services`.

Registered from :mod:`recommendations.admin` (imported at its end), which Django's admin
discovers.
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils.safestring import mark_safe
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from lookalike.admin_in_use import InUseAdminMixin
from lookalike.admin_lookups import SafeLookupsMixin
from lookalike.keys import row_id

from ..models import BlendProfile, Experiment, ExperimentArm
from .report import VERDICTS, experiment_report, report_chart_svg
from .services import ExperimentError, start_experiment, stop_experiment


class ArmForm(forms.ModelForm):
    """An arm's row: a table shows each field's label once, as its column's header, so
    every input of the row also names itself (``aria-label``: "Arm 2: Profile") for those
    who cannot see which column it is in. A row added in the page is named by its field
    alone (the admin's script numbers its ``id`` and ``name``, not its label)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        row = self.prefix.rsplit("-", 1)[-1] if self.prefix else ""
        for field in self.fields.values():
            name = str(field.label or "")
            if row.isdigit():
                name = gettext("Arm %(number)s: %(field)s") % {
                    "number": int(row) + 1,
                    "field": name,
                }
            # The admin wraps a foreign key's select (its add and change links): the
            # select inside is the one rendered with these attributes.
            widget = getattr(field.widget, "widget", field.widget)
            widget.attrs["aria-label"] = name
            # A table shows help in its column's header (an icon with the text as its alt,
            # taken from the template row), not beside each input: a row's inputs must not
            # point at help elements that are not there.
            if row.isdigit():
                field.help_text = ""


class ArmFormSet(forms.BaseInlineFormSet):
    """Refuses two arms at one position (the arm with the lowest is the control, and which
    of two arms at one position that would be is not for the order of saving to decide)
    and two arms with one profile (they would be the same arm twice; starting refuses it
    too, said here when the draft is saved). Each row's "Delete" box names its arm."""

    def add_fields(self, form, index):
        super().add_fields(form, index)
        if "DELETE" in form.fields and index is not None:
            form.fields["DELETE"].widget.attrs["aria-label"] = gettext("Arm %(number)s: Delete") % {
                "number": index + 1
            }

    def clean(self):
        super().clean()
        positions, profiles = set(), set()
        for form in self.forms:
            data = getattr(form, "cleaned_data", None) or {}
            if data.get("DELETE") or data.get("position") is None:
                continue
            if data["position"] in positions:
                raise forms.ValidationError(
                    gettext(
                        "Two arms have position %(position)s: give each arm its own (the "
                        "arm with the lowest position is the control)."
                    )
                    % {"position": data["position"]},
                    code="duplicate_position",
                )
            positions.add(data["position"])
            profile = data.get("profile")
            if profile is not None and profile.pk in profiles:
                raise forms.ValidationError(
                    gettext("Two arms serve the profile “%(profile)s”: each arm needs its own.")
                    % {"profile": profile.name},
                    code="duplicate_profile",
                )
            if profile is not None:
                profiles.add(profile.pk)


class ExperimentArmInline(admin.TabularInline):
    model = ExperimentArm
    form = ArmForm
    formset = ArmFormSet
    fields = ["position", "name", "profile", "share"]
    extra = 2
    min_num = 0

    def _draft(self, obj):
        return obj is None or obj.status == Experiment.Status.DRAFT

    def has_add_permission(self, request, obj=None):
        return self._draft(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return self._draft(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self._draft(obj) and super().has_delete_permission(request, obj)


def _results_context(experiment):
    report = experiment_report(experiment)
    for row in report["arms"]:
        row["verdict_label"] = VERDICTS.get(row.get("verdict", ""), "")
    return {
        "report": report,
        "experiment": experiment,
        "simulated_strips": sum(row["simulated_strips"] for row in report["arms"]),
        "strips": sum(row["strips"] for row in report["arms"]),
        "ctr_chart": mark_safe(report_chart_svg(report, "ctr")),  # names escaped there
        "conversion_chart": mark_safe(report_chart_svg(report, "conversion")),
    }


@admin.register(Experiment)
class ExperimentAdmin(SafeLookupsMixin, InUseAdminMixin, admin.ModelAdmin):
    list_display = ["name", "status", "started_at", "stopped_at", "winner"]
    list_filter = ["status"]
    inlines = [ExperimentArmInline]
    readonly_fields = ["status", "started_at", "stopped_at", "winner", "results"]
    fieldsets = [
        (None, {"fields": ["name", "description", "status", "started_at", "stopped_at"]}),
        (_("Plan"), {"fields": ["min_impressions", "alpha"]}),
        (_("Results"), {"fields": ["winner", "results"]}),
    ]

    # A running experiment is stopped first (its stop says what is served next); deleting
    # it would take its impressions with it while shoppers are in its arms.
    in_use_filter = {"status": Experiment.Status.RUNNING}

    def in_use_message(self, experiment):
        return gettext("“%(name)s” is running and cannot be deleted: stop it first.") % {
            "name": experiment.name
        }

    def get_formset_kwargs(self, request, obj, inline, prefix):
        """The empty arm rows come numbered after the arms there are (0 and 1 in a new
        experiment), so that leaving the positions as they are never puts two arms at
        one. The same numbers are given when the form comes back, so that a row left as
        it was shown counts as unchanged (and is skipped), not as an arm without a name."""
        kwargs = super().get_formset_kwargs(request, obj, inline, prefix)
        if isinstance(inline, ExperimentArmInline):
            arms = obj.arms.all() if obj is not None and obj.pk else []
            after = max((arm.position + 1 for arm in arms), default=0)
            extra = inline.get_extra(request, obj)
            kwargs["initial"] = [{"position": after + i} for i in range(extra)]
        return kwargs

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and obj.status != Experiment.Status.DRAFT:
            fields += ["name", "min_impressions", "alpha"]
        return fields

    @admin.display(description=_("Figures per arm"))
    def results(self, experiment):
        if experiment.pk is None:
            return "—"
        return render_to_string(
            "admin/recommendations/experiment/results.html", _results_context(experiment)
        )

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/start/", view(self.start_view), name="recommendations_experiment_start"),
            path("<int:pk>/stop/", view(self.stop_view), name="recommendations_experiment_stop"),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        pk = row_id(object_id)
        experiment = Experiment.objects.filter(pk=pk).first() if pk is not None else None
        extra = {**(extra_context or {}), "experiment": experiment}
        if experiment is not None:
            extra["arms"] = list(experiment.arms.select_related("profile"))
            extra["default_profile"] = BlendProfile.objects.filter(is_default=True).first()
        return super().change_view(request, object_id, form_url, extra_context=extra)

    def _guard(self, request, pk):
        experiment = get_object_or_404(Experiment, pk=pk)
        if not self.has_change_permission(request, experiment):
            raise PermissionDenied
        return experiment

    def _back(self, experiment):
        return redirect(reverse("admin:recommendations_experiment_change", args=[experiment.pk]))

    def start_view(self, request, pk):
        return require_POST(self._start)(request, pk)

    def _start(self, request, pk):
        experiment = self._guard(request, pk)
        try:
            start_experiment(experiment)
        except ExperimentError as exc:
            self.message_user(request, str(exc), messages.ERROR)
        else:
            self.message_user(
                request, gettext("“%(name)s” is running.") % {"name": experiment.name}
            )
        return self._back(experiment)

    def stop_view(self, request, pk):
        return require_POST(self._stop)(request, pk)

    def _stop(self, request, pk):
        experiment = self._guard(request, pk)
        choice = request.POST.get("winner", "")
        winner = None
        if choice:
            arm_pk = row_id(choice)
            arms = experiment.arms.select_related("profile")
            winner = arms.filter(pk=arm_pk).first() if arm_pk is not None else None
            if winner is None:
                self.message_user(
                    request, gettext("That arm is not part of this experiment."), messages.ERROR
                )
                return self._back(experiment)
        try:
            stop_experiment(experiment, winner)
        except ExperimentError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return self._back(experiment)
        if winner is None:
            message = gettext("“%(name)s” stopped; the default profile is served.")
        else:
            message = gettext("“%(name)s” stopped; “%(profile)s” is now the default profile.")
        name = {"name": experiment.name, "profile": winner.profile.name if winner else ""}
        self.message_user(request, message % name)
        return self._back(experiment)
