"""Finding and publishing blend profiles.

Analysts tune weights in notebooks
(:func:`recommendations.offline.blend_evaluation.evaluate_blend`)
and publish the result with :func:`publish_profile`, which refuses a profile the shop
could not serve as intended: weights that are all zero, negative or misspelt, or weights
on a source the catalogue does not have yet (visual similarity without embeddings for the
configured encoder, collaborative filtering without a trained model).

The widgets keep the profiles they blend with per process
(:data:`recommendations.caching.PROFILES`); saving a profile bumps their stamp (a signal),
and :func:`make_default`, which writes without one, bumps it itself, so the next page of
every process shows what :func:`publish_profile` published.
"""

from __future__ import annotations

import json
import math
import numbers

from django.core.exceptions import ValidationError
from django.core.validators import validate_slug
from django.db import IntegrityError, transaction

from ..blending.core import (
    COMPONENTS,
    DEFAULT_DIVERSITY_PARAMS,
    DIVERSITY_METHODS,
    RULES,
)
from ..blending.segment_weights import clean_segment_weights
from ..caching import EXPERIMENTS, PROFILES
from ..models import BlendProfile, Experiment, ExperimentArm
from .profile_sources import catalogue_problems

__all__ = [
    "InvalidProfile",
    "UnknownProfile",
    "catalogue_problems",
    "clean_segments",
    "clean_weights",
    "get_profile",
    "make_default",
    "publish_profile",
]


class UnknownProfile(LookupError, ValueError):
    """No blend profile has the requested name.

    ``name`` and ``available`` (the names there are) let a front end say so in the
    shopper's language; ``str()`` is the English message for developers and logs.
    """

    def __init__(self, name, available=()):
        self.name = name
        self.available = list(available)
        super().__init__(
            f"Unknown blend profile {name!r}; available profiles: "
            f"{', '.join(self.available) if self.available else 'none'}."
        )


class InvalidProfile(ValueError):
    """A profile :func:`publish_profile` refuses; the message says why."""


def get_profile(profile=None):
    """The ``BlendProfile`` to blend with.

    Parameters
    ----------
    profile : BlendProfile, str or None
        A profile, a profile's name, or ``None`` for the default profile.

    Returns
    -------
    BlendProfile or None
        ``None`` only when ``profile`` is None and no profile is the default.

    Raises
    ------
    UnknownProfile
        For a name no profile has; the message lists the names there are.
    """
    if isinstance(profile, BlendProfile):
        return profile
    if profile is None or profile == "":
        return BlendProfile.objects.filter(is_default=True).first()
    found = BlendProfile.objects.filter(name=str(profile)).first()
    if found is None:
        names = BlendProfile.objects.values_list("name", flat=True)
        raise UnknownProfile(str(profile), names)
    return found


def clean_weights(weights):
    """``weights`` with every component, as floats; :class:`InvalidProfile` unless they are
    finite, non-negative, not all zero and named as the components are."""
    if not isinstance(weights, dict) or not weights:
        raise InvalidProfile(
            f"weights must be a dict with some of the keys {', '.join(COMPONENTS)}."
        )
    unknown = sorted(str(key)[:50] for key in weights if key not in COMPONENTS)
    if unknown:
        named = ", ".join(unknown[:10]) + (
            f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        )
        raise InvalidProfile(
            f"Unknown weight(s) {named}; the components are {', '.join(COMPONENTS)}."
        )
    cleaned = {}
    for key in COMPONENTS:
        value = weights.get(key, 0.0)
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise InvalidProfile(f"The {key} weight must be a number, not {value!r}.")
        value = float(value)
        if not math.isfinite(value):
            raise InvalidProfile(f"The {key} weight must be finite, not {value!r}.")
        if value < 0:
            raise InvalidProfile(f"The {key} weight is negative ({value:g}); weights must be >= 0.")
        cleaned[key] = value
    if not any(cleaned.values()):
        raise InvalidProfile("All weights are zero: at least one component must weigh above 0.")
    return cleaned


def clean_segments(segments, weights=None):
    """``segments`` (``{segment: {component: weight}}``, the weights that replace the
    profile's in a segment, component by component) with float weights;
    :class:`InvalidProfile` unless the segments are in ``SEGMENTS``, the components in
    ``COMPONENTS``, the weights finite and non-negative and, given the profile's
    ``weights``, some weight of each segment above zero
    (:func:`~recommendations.blending.core.clean_segment_weights`)."""
    try:
        return clean_segment_weights(segments, weights)
    except ValueError as exc:
        raise InvalidProfile(str(exc)) from None


def _clean_diversity(diversity):
    if isinstance(diversity, str):
        method, param = diversity, None
    elif isinstance(diversity, dict):
        extra = set(diversity) - {"method", "parameter", "param"}
        if extra:
            raise InvalidProfile(
                f"Unknown diversity key(s) {', '.join(sorted(extra))}; use 'method' and "
                "'parameter'."
            )
        method = diversity.get("method")
        param = diversity.get("parameter", diversity.get("param"))
    elif isinstance(diversity, list | tuple) and len(diversity) == 2:
        method, param = diversity
    else:
        raise InvalidProfile(
            "diversity must be a method name, a (method, parameter) pair or a dict with "
            f"'method' and 'parameter'; got {diversity!r}."
        )
    if method not in DIVERSITY_METHODS:
        raise InvalidProfile(
            f"Unknown diversity method {method!r}; choose one of {', '.join(DIVERSITY_METHODS)}."
        )
    if param is None:
        param = DEFAULT_DIVERSITY_PARAMS[method]
    if isinstance(param, bool) or not isinstance(param, numbers.Real):
        raise InvalidProfile(f"The diversity parameter must be a number, not {param!r}.")
    if not math.isfinite(param):
        raise InvalidProfile(f"The diversity parameter must be a finite number, not {param!r}.")
    return method, float(param)


def _clean_rules(rules):
    rules = {} if rules is None else rules
    if not isinstance(rules, dict):
        raise InvalidProfile(f"rules must be a dict of {', '.join(RULES)} to True/False.")
    unknown = sorted(str(key) for key in rules if key not in RULES)
    if unknown:
        raise InvalidProfile(
            f"Unknown rule(s) {', '.join(unknown)}; the rules are {', '.join(RULES)}."
        )
    for key, value in rules.items():
        if not isinstance(value, bool):
            raise InvalidProfile(f"The rule {key} must be True or False, not {value!r}.")
    return rules


def publish_profile(
    name,
    weights,
    diversity=("mmr", 0.7),
    rules=None,
    metrics=None,
    user=None,
    make_default=False,
    notes="",
    segments=None,
):
    """Create or update the blend profile ``name`` and optionally make it the default.

    Parameters
    ----------
    name : str
        A slug (lowercase letters, digits, hyphens, underscores); an existing profile of that name
        is updated.
    weights : dict
        ``{component: weight}`` over ``visual``, ``collaborative``, ``affinity``,
        ``popularity``, ``recency``; missing components weigh 0. Only the proportions
        matter: the blend scales weights to sum to 1.
    diversity : str, (method, parameter) or dict
        ``"none"``, ``"mmr"`` (parameter: lambda in [0, 1], 0.7 by default) or
        ``"category_cap"`` (parameter: a whole number >= 1, 2 by default).
    rules : dict, optional
        ``in_stock_only``, ``exclude_purchased``, ``exclude_current`` (all True unless
        given).
    metrics : dict, optional
        Figures to keep with the profile (from ``evaluate_blend``); must be JSON.
    user : User, optional
        Who published it.
    make_default : bool
        Serve it from the next request on.
    notes : str
    segments : dict, optional
        ``{segment: {component: weight}}``: the weights that replace ``weights``,
        component by component, for a product the model does not know (``cold_item``) or
        a shopper with at most two events (``new_shopper``); none unless given.

    Returns
    -------
    BlendProfile

    Raises
    ------
    InvalidProfile
        With a message saying what is wrong, and nothing saved.
    """
    if not isinstance(name, str):
        raise InvalidProfile(f"The profile name must be text, not {type(name).__name__}.")
    try:
        validate_slug(name)
    except ValidationError:
        raise InvalidProfile(
            f"The profile name {name!r} must be a slug: letters, digits, '-' and '_'."
        ) from None
    notes = "" if notes is None else notes
    if not isinstance(notes, str):
        raise InvalidProfile(f"notes must be text, not {type(notes).__name__}.")
    cleaned = clean_weights(weights)
    segments = clean_segments(segments, cleaned)
    method, param = _clean_diversity(diversity)
    rules = _clean_rules(rules)
    metrics = {} if metrics is None else metrics
    try:
        size = len(json.dumps(metrics, allow_nan=False))
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidProfile(
            f"metrics must be plain JSON (numbers, strings, lists, dicts): {exc}."
        ) from None
    if size > MAX_METRICS_BYTES:
        raise InvalidProfile(
            f"metrics take {size:,} bytes as JSON; at most {MAX_METRICS_BYTES:,} are kept."
        )
    problems = catalogue_problems(_strongest(cleaned, segments))
    if problems:
        raise InvalidProfile(
            f"The profile {name!r} does not match the catalogue: " + "; ".join(problems)
        )
    values = (cleaned, segments, method, param, rules, metrics, notes, user)
    try:
        profile = _store(name, values, make_default)
    except IntegrityError:
        # Another process created the profile between our look-up and our insert (two
        # notebooks publishing one new name): it exists now, so this publish updates it.
        profile = _store(name, values, make_default)
    return profile


#: The largest ``metrics`` a profile keeps, as JSON.
MAX_METRICS_BYTES = 1_000_000


def _store(name, values, make_default):
    """Write the checked ``values`` into the profile ``name`` (created if missing), in one
    transaction, unless it is an arm of a running experiment."""
    cleaned, segments, method, param, rules, metrics, notes, user = values
    with transaction.atomic():
        profile = BlendProfile.objects.select_for_update().filter(name=name).first()
        if profile is None:
            profile = BlendProfile(name=name)
        else:
            _refuse_if_in_a_running_experiment(profile)
            if profile.is_default and not make_default:  # served to every shopper
                raise InvalidProfile(
                    f"The profile {name!r} is the default profile, served to every "
                    "shopper: pass make_default=True to change what it serves, or publish "
                    "under another name."
                )
        for key, value in cleaned.items():
            setattr(profile, f"{key}_weight", value)
        profile.segments = segments
        profile.diversity = method
        profile.diversity_param = param
        for key in RULES:
            setattr(profile, key, rules.get(key, True))
        profile.metrics = metrics
        profile.notes = notes
        if user is not None and getattr(user, "is_authenticated", False):
            profile.created_by = user
        try:
            # The name's uniqueness is the database's to say (an IntegrityError, retried
            # as an update by publish_profile): another process may insert it meanwhile.
            profile.full_clean(exclude=["is_default"], validate_unique=False)
        except ValidationError as exc:
            raise InvalidProfile(_message(exc)) from None
        if make_default:
            refuse_a_new_default_while_an_experiment_runs()
        profile.save()  # its post_save tells every process (recommendations.caching)
        if make_default:
            _serve_as_default(profile)
    return profile


def _refuse_if_in_a_running_experiment(profile):
    """An arm serves its profile as it is now (:meth:`ExperimentArm.running_for`)."""
    running = ExperimentArm.running_for(profile)
    if running is not None:
        raise InvalidProfile(
            f"The profile {profile.name!r} is an arm of the running experiment "
            f"{running.experiment.name!r}: publish under another name, or stop the "
            "experiment first."
        )


def running_experiment():
    """The experiment that runs, if one does (at most one runs at a time)."""
    return Experiment.objects.filter(status=Experiment.Status.RUNNING).first()


def refuse_a_new_default_while_an_experiment_runs():
    """:class:`InvalidProfile` while an experiment runs: stopped without a winner it serves
    the default profile, which must be the one it ran beside, not one it never tested."""
    running = running_experiment()
    if running is not None:
        raise InvalidProfile(
            f"The experiment {running.name!r} is running, and stopped without a winner it "
            "serves the default profile: stop it first, or publish without making this "
            "profile the default."
        )


def make_default(profile):
    """Make ``profile`` the default and have every process serve it from its next request
    (the admin's action and form, the experiments' stop; :meth:`BlendProfile.make_default`
    alone writes the rows with ``update()``, which no signal reports)."""
    with transaction.atomic():
        _serve_as_default(profile)
    return profile


def _serve_as_default(profile):
    # publish_profile's own argument is called make_default: both call this.
    profile.make_default()
    PROFILES.bump()
    EXPERIMENTS.bump()  # an arm may serve "the default"


def _strongest(weights, segments):
    """The largest weight each component has in the profile or any of its segments: a
    source any of them uses must exist."""
    every = [weights, *({**weights, **values} for values in segments.values())]
    return {c: max(w.get(c, 0.0) for w in every) for c in COMPONENTS}


def _message(exc):
    if hasattr(exc, "message_dict"):
        return "; ".join(
            f"{field}: {' '.join(messages)}" if field != "__all__" else " ".join(messages)
            for field, messages in exc.message_dict.items()
        )
    return " ".join(exc.messages)
