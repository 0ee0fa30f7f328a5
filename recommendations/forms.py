"""The admin's form of a blend profile: its segment weights as one number field each.

A profile stores its segment weights as JSON (``BlendProfile.segments``), which notebooks
write; an analyst in the admin edits them as numbers, a blank field keeping the profile's
own weight, and is told in words when a segment would have nothing to rank by.
"""

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.utils.text import capfirst
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from .blending.core import COMPONENTS, MAX_WEIGHT, SEGMENTS
from .models import BlendProfile, ExperimentArm

__all__ = ["SEGMENT_FIELDS", "BlendProfileForm"]


def _segment_field(segment, component):
    return f"{segment}_{component}_weight"


#: Form fields of the segment weights, by fieldset: one number per segment and component.
SEGMENT_FIELDS = {
    segment: [_segment_field(segment, component) for component in COMPONENTS]
    for segment in SEGMENTS
}


#: Whole sentences per segment, never a segment's name spliced into a sentence: its case
#: and article depend on the sentence in other languages.
ALL_ZERO_ERRORS = {
    "cold_item": _(
        "Every weight would be zero for a new product: give one a weight above zero, or "
        "leave the fields blank to keep the weights above."
    ),
    "new_shopper": _(
        "Every weight would be zero for a new shopper: give one a weight above zero, or "
        "leave the fields blank to keep the weights above."
    ),
}
#: The confirmation page's column of each segment's weights.
SEGMENT_COLUMNS = {
    "cold_item": _("Weights for a new product"),
    "new_shopper": _("Weights for a new shopper"),
}


class BlendProfileForm(forms.ModelForm):
    """A profile, its segment weights as one number field each (a blank field keeps the
    profile's own weight for that component) rather than the JSON they are stored as."""

    class Meta:
        model = BlendProfile
        fields = [
            "name",
            "notes",
            *BlendProfile.WEIGHT_FIELDS,
            "diversity",
            "diversity_param",
            "in_stock_only",
            "exclude_purchased",
            "exclude_current",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        stored = self.instance.segments if isinstance(self.instance.segments, dict) else {}
        for segment in SEGMENTS:
            values = stored.get(segment) if isinstance(stored.get(segment), dict) else {}
            for component in COMPONENTS:
                name = _segment_field(segment, component)
                if name in self.fields and component in values:
                    self.initial.setdefault(name, values[component])

    def clean(self):
        cleaned = super().clean()
        if self.instance.pk is not None:
            self._check_serving(cleaned)
        own = {c: cleaned.get(f"{c}_weight") or 0 for c in COMPONENTS}
        segments = {}
        for segment in SEGMENTS:
            values = {
                component: cleaned[_segment_field(segment, component)]
                for component in COMPONENTS
                if cleaned.get(_segment_field(segment, component)) is not None
            }
            if values and not any({**own, **values}.values()):
                self.add_error(
                    _segment_field(segment, COMPONENTS[0]), str(ALL_ZERO_ERRORS[segment])
                )
                return cleaned
            if values:
                segments[segment] = values
        self.instance.segments = segments
        return cleaned

    def _check_serving(self, cleaned):
        """What a saved profile that serves an arm of the running experiment may not do
        from this form: change how it ranks (the arm would change in the middle of the test,
        and its figures would mix two profiles). Whether it is the default is not edited
        here: the list's action makes another profile the default, after a page that shows
        both."""
        stored = BlendProfile.objects.filter(pk=self.instance.pk).first()
        if stored is None:
            return
        ranking = set(self.changed_data) - {"name", "notes"}
        if not ranking:
            return
        running = ExperimentArm.running_for(stored)
        if running is not None:
            self.add_error(
                None,
                gettext(
                    "This profile serves the arm “%(arm)s” of the running experiment "
                    "“%(experiment)s”: changing its weights, diversity or rules now would "
                    "change that arm in the middle of the test. Stop the experiment first, "
                    "or save these settings as a new profile."
                )
                % {"arm": running.name, "experiment": running.experiment.name},
            )

    def _update_errors(self, errors):
        # The model reports its segment weights under "segments", which this form shows as
        # number fields: their errors go to the top of the form.
        if "segments" in getattr(errors, "error_dict", {}):
            by_field = dict(errors.error_dict)
            by_field.setdefault(NON_FIELD_ERRORS, []).extend(by_field.pop("segments"))
            errors = ValidationError(by_field)
        super()._update_errors(errors)


for _segment, _names in SEGMENT_FIELDS.items():
    for _component, _name in zip(COMPONENTS, _names, strict=True):
        BlendProfileForm.base_fields[_name] = BlendProfileForm.declared_fields[_name] = (
            forms.FloatField(
                label=capfirst(BlendProfile._meta.get_field(f"{_component}_weight").verbose_name),
                required=False,
                min_value=0,
                max_value=MAX_WEIGHT,
                widget=forms.NumberInput(attrs={"step": "any", "placeholder": "—"}),
            )
        )
