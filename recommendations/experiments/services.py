"""Creating, starting and stopping experiments: the functions the admin, the commands
and the notebooks call.

Every rule lives here, so that a shop cannot reach an experiment the widgets could not
serve: an experiment starts with at least two arms, each on a different existing profile
with a positive share, and only when no other experiment runs (the database's partial
unique constraint is the last word when two admins press "Start" at once). Stopping
makes the winner's profile the default profile, which every widget and API call then
serves; without a winner the default profile is left as it was.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext, pgettext
from django.utils.translation import gettext_lazy as _

from ..models import BlendProfile, Experiment, ExperimentArm
from ..services.profiles import make_default

__all__ = [
    "ExperimentError",
    "create_experiment",
    "running_arms",
    "start_experiment",
    "stop_experiment",
]


class ExperimentError(ValueError):
    """An experiment cannot be created, started or stopped as asked; the message says why."""


def _profile(value):
    if isinstance(value, BlendProfile):
        return value
    found = BlendProfile.objects.filter(name=str(value)).first()
    if found is None:
        names = ", ".join(BlendProfile.objects.values_list("name", flat=True)) or pgettext(
            "no blend profiles", "none"
        )
        raise ExperimentError(
            gettext("Unknown blend profile “%(name)s”; available profiles: %(names)s.")
            % {"name": value, "names": names}
        )
    return found


def create_experiment(name, arms, *, description="", min_impressions=2000, alpha=0.05):
    """A draft experiment with ``arms``.

    Parameters
    ----------
    name : str
        A slug, unique among experiments.
    arms : sequence of (arm name, profile or profile name, share)
        The first is the control.
    min_impressions : int
        The planned number of strips per arm (see :mod:`.stats`).
    alpha : float
        Overall two-sided significance level, in (0, 0.5).

    Raises
    ------
    ExperimentError
    """
    if Experiment.objects.filter(name=name).exists():
        raise ExperimentError(
            gettext("An experiment named “%(name)s” exists already.") % {"name": name}
        )
    if not 0 < alpha < 0.5:
        raise ExperimentError(
            gettext("The level must be between 0 and 0.5, not %(alpha)s.") % {"alpha": alpha}
        )
    with transaction.atomic():
        experiment = Experiment.objects.create(
            name=name, description=description, min_impressions=min_impressions, alpha=alpha
        )
        for position, (arm_name, profile, share) in enumerate(arms):
            ExperimentArm.objects.create(
                experiment=experiment,
                name=arm_name,
                profile=_profile(profile),
                share=int(share),
                position=position,
            )
        _check_arms(experiment)
    return experiment


def _check_arms(experiment):
    arms = list(experiment.arms.all())
    if len(arms) < 2:
        raise ExperimentError(gettext("An experiment needs at least two arms."))
    if any(arm.share < 1 for arm in arms):
        raise ExperimentError(gettext("Every arm needs a traffic share of at least 1."))
    if len({arm.profile_id for arm in arms}) != len(arms):
        raise ExperimentError(gettext("Two arms serve the same profile; each arm needs its own."))


#: What an experiment in each state says when asked to start or stop: one whole sentence
#: per state, so that translators never splice a state's name into another sentence.
_STATE_SENTENCES = {
    Experiment.Status.DRAFT: _("“%(name)s” is still a draft."),
    Experiment.Status.RUNNING: _("“%(name)s” is already running."),
    Experiment.Status.STOPPED: _("“%(name)s” is stopped; an experiment runs once."),
}


def _locked_in(experiment, status, message):
    """``experiment`` read afresh and locked for the transaction; ``ExperimentError`` with
    ``message`` and the sentence of the state it is in, unless it is in ``status``."""
    experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
    if experiment.status != status:
        state = _STATE_SENTENCES[experiment.status] % {"name": experiment.name}
        raise ExperimentError(f"{message} {state}")
    return experiment


def start_experiment(experiment):
    """Start serving ``experiment``'s arms to shoppers.

    Raises
    ------
    ExperimentError
        Unless it is a draft with valid arms and no other experiment runs.
    """
    with transaction.atomic():
        experiment = _locked_in(
            experiment,
            Experiment.Status.DRAFT,
            gettext("Only a draft experiment can start."),
        )
        _check_arms(experiment)
        other = Experiment.objects.filter(status=Experiment.Status.RUNNING).first()
        if other is not None:
            raise ExperimentError(
                gettext("The experiment “%(name)s” is running; stop it before starting another.")
                % {"name": other.name}
            )
        experiment.status = Experiment.Status.RUNNING
        experiment.started_at = timezone.now()
        try:
            with transaction.atomic():
                experiment.save(update_fields=["status", "started_at"])
        except IntegrityError:
            raise ExperimentError(
                gettext("Another experiment started at the same moment; stop it first.")
            ) from None
    return experiment


def stop_experiment(experiment, winner=None):
    """Stop ``experiment``; ``winner`` (one of its arms, or ``None``) becomes the default.

    Raises
    ------
    ExperimentError
        If it is not running, or the winner is not one of its arms.
    """
    with transaction.atomic():
        experiment = _locked_in(
            experiment,
            Experiment.Status.RUNNING,
            gettext("Only a running experiment can stop."),
        )
        if winner is not None and not experiment.arms.filter(pk=winner.pk).exists():
            raise ExperimentError(
                gettext("The arm %(arm)s is not part of “%(name)s”.")
                % {"arm": winner, "name": experiment.name}
            )
        experiment.status = Experiment.Status.STOPPED
        experiment.stopped_at = timezone.now()
        experiment.winner = winner
        experiment.save(update_fields=["status", "stopped_at", "winner"])
        if winner is not None:
            make_default(winner.profile)
    return experiment


def running_arms():
    """The arms of the running experiment with their experiment and profile (one query),
    in the control-first order; empty when none runs."""
    return list(
        ExperimentArm.objects.filter(experiment__status=Experiment.Status.RUNNING)
        .select_related("experiment", "profile")
        .order_by("position", "pk")
    )
