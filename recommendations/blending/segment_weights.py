"""Validation of a profile's segment weights (``BlendProfile.segments``), shared by the
model's ``clean()`` (the admin) and :func:`~recommendations.services.profiles.publish_profile`
(notebooks). Imports only :mod:`.core`, so that the model can use it while apps load."""

from __future__ import annotations

import math
import numbers

from django.utils.translation import gettext

from .core import COMPONENTS, MAX_WEIGHT, SEGMENTS

__all__ = ["clean_segment_weights"]


def _segment_weight(segment, component, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(
            gettext("The %(segment)s %(component)s weight must be a number, not “%(value)s”.")
            % {"segment": segment, "component": component, "value": value}
        )
    value = float(value)
    if not math.isfinite(value) or not 0 <= value <= MAX_WEIGHT:
        raise ValueError(
            gettext(
                "The %(segment)s %(component)s weight must be from 0 to %(max)s, not “%(value)s”."
            )
            % {"segment": segment, "component": component, "value": value, "max": f"{MAX_WEIGHT:g}"}
        )
    return value


def clean_segment_weights(segments, weights=None):
    """``{segment: {component: float weight}}`` from a profile's ``segments``.

    Raises
    ------
    ValueError
        With a translated message, unless every segment is one of :data:`SEGMENTS` and
        maps some of :data:`COMPONENTS` to finite weights >= 0 and, given the profile's
        own ``weights``, the segment's weights (the profile's where it names none) are
        not all zero.
    """
    if segments is None or segments == {}:
        return {}
    names = {"segments": ", ".join(SEGMENTS), "components": ", ".join(COMPONENTS)}
    if not isinstance(segments, dict):
        raise ValueError(
            gettext(
                'Segment weights must be a JSON object like {"cold_item": {"visual": 0.8}}; '
                "the segments are %(segments)s."
            )
            % names
        )
    cleaned = {}
    for segment, values in segments.items():
        if segment not in SEGMENTS:
            raise ValueError(
                gettext("Unknown segment “%(name)s”; the segments are %(segments)s.")
                % {"name": segment, **names}
            )
        unknown = (
            sorted(str(key) for key in values if key not in COMPONENTS)
            if isinstance(values, dict)
            else []
        )
        if not isinstance(values, dict) or not values or unknown:
            raise ValueError(
                gettext("The %(segment)s segment must map some of %(components)s to weights.")
                % {"segment": segment, **names}
            )
        cleaned[segment] = {c: _segment_weight(segment, c, v) for c, v in values.items()}
        if weights is not None and not any({**weights, **cleaned[segment]}.values()):
            raise ValueError(
                gettext("All weights are zero in the %(segment)s segment.") % {"segment": segment}
            )
    return cleaned
