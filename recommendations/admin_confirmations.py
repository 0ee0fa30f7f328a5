"""The pages on which admin actions that change what every shopper is served ask first.

Activating another model version and making another profile the default both switch every
shopper's recommendations within seconds, in every serving process. As Django's own bulk
delete does, such an action first renders a page that says what changes, with what is
served now beside what would be (``admin/recommendations/confirm_action.html``), and a
"Yes" that posts the action again with ``post=yes``.
"""

from django.contrib.admin import helpers
from django.template.response import TemplateResponse
from django.utils.formats import number_format
from django.utils.text import capfirst
from django.utils.translation import gettext, pgettext

from .blending.core import COMPONENTS
from .forms import SEGMENT_COLUMNS
from .models import BlendProfile, RecommenderModel

__all__ = ["confirm_activation", "confirm_make_default", "confirmed"]


def confirmed(request) -> bool:
    """Whether the action's request is the "Yes" of its confirmation page."""
    return request.POST.get("post") == "yes"


def _page(modeladmin, request, action, selected, **context):
    return TemplateResponse(
        request,
        "admin/recommendations/confirm_action.html",
        {
            **modeladmin.admin_site.each_context(request),
            "opts": modeladmin.model._meta,
            "action": action,
            "selected": selected,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            **context,
        },
    )


def confirm_activation(modeladmin, request, row):
    """The page that asks before version ``row`` replaces the active one, with both
    versions' held-out figures (``modeladmin``'s ``precision`` and ``ndcg`` columns)."""
    active = RecommenderModel.objects.filter(is_active=True).first()
    metrics = [getattr(modeladmin, name) for name in ("precision", "ndcg")]
    if active is None:
        message = gettext(
            "No version is active now; version %(new)s will serve every shopper within seconds."
        ) % {"new": row.version}
    else:
        message = gettext(
            "Version %(new)s will replace version %(old)s for every shopper: the widgets and "
            "the API switch to it within seconds, in every serving process."
        ) % {"new": row.version, "old": active.version}
    rows = []
    for version in (v for v in (active, row) if v is not None):
        state = gettext("(active now)") if version.is_active else gettext("(to activate)")
        cells = [version.trained_at, version.n_users, version.n_items]
        rows.append(
            {
                "key": version.version,
                "label": pgettext("a model version and its state", "%(version)s %(state)s")
                % {"version": version.version, "state": state},
                "cells": cells + [metric(version) for metric in metrics],
            }
        )
    return _page(
        modeladmin,
        request,
        "activate_version",
        row.pk,
        title=gettext("Activate version %(version)s?") % {"version": row.version},
        crumb=gettext("Activate a version"),
        message=message,
        caption=gettext("The versions, with their held-out figures"),
        columns=[
            gettext("Version"),
            gettext("Trained at"),
            gettext("Shoppers"),
            gettext("Products"),
            *(metric.short_description for metric in metrics),
        ],
        rows=rows,
        yes=gettext("Yes, activate version %(version)s") % {"version": row.version},
    )


def confirm_make_default(modeladmin, request, profile):
    """The page that asks before ``profile`` replaces the default profile, with both
    profiles' weights and diversity."""
    current = BlendProfile.objects.filter(is_default=True).first()
    fields = [*BlendProfile.WEIGHT_FIELDS, "diversity", "diversity_param"]
    if current is None:
        message = gettext(
            "No profile is the default now; “%(new)s” will serve every widget that names no "
            "profile, within seconds."
        ) % {"new": profile.name}
    else:
        message = gettext(
            "“%(new)s” will replace “%(old)s” as the default profile: every widget that names "
            "no profile, and the API's profile=default, switch to it within seconds, in every "
            "serving process. A running experiment keeps its arms' profiles."
        ) % {"new": profile.name, "old": current.name}
    rules = ["in_stock_only", "exclude_purchased", "exclude_current"]
    rows = []
    for row in (p for p in (current, profile) if p is not None):
        state = gettext("(default now)") if row.is_default else gettext("(to make the default)")
        shown = {
            "diversity": row.get_diversity_display,
            "diversity_param": row.diversity_setting_display,
        }
        cells = [shown[name]() if name in shown else getattr(row, name) for name in fields]
        cells += [_segment_text(row, segment) for segment in SEGMENT_COLUMNS]
        cells += [gettext("Yes") if getattr(row, name) else gettext("No") for name in rules]
        label = pgettext("a blend profile and its state", "%(name)s %(state)s") % {
            "name": row.name,
            "state": state,
        }
        rows.append({"key": row.name, "label": label, "cells": cells})
    return _page(
        modeladmin,
        request,
        "make_default",
        profile.pk,
        title=gettext("Make “%(name)s” the default profile?") % {"name": profile.name},
        crumb=gettext("Change the default profile"),
        message=message,
        caption=gettext("The profiles, with their weights, diversity and rules"),
        columns=[
            gettext("Profile"),
            *(capfirst(BlendProfile._meta.get_field(name).verbose_name) for name in fields),
            *SEGMENT_COLUMNS.values(),
            *(capfirst(BlendProfile._meta.get_field(name).verbose_name) for name in rules),
        ],
        rows=rows,
        yes=gettext("Yes, make “%(name)s” the default") % {"name": profile.name},
    )


def _segment_text(profile, segment):
    """``profile``'s weights for ``segment`` in words ("visual weight 0.8, ..."), or that it
    keeps its own weights there."""
    weights = (profile.segments or {}).get(segment) or {}
    if not weights:
        return gettext("the weights above")
    return gettext(", ").join(
        pgettext("a weight and its value", "%(name)s %(value)s")
        % {
            "name": BlendProfile._meta.get_field(f"{component}_weight").verbose_name,
            "value": number_format(weights[component]),
        }
        for component in COMPONENTS
        if component in weights
    )
