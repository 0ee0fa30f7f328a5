"""The values the widgets keep per process between requests, and what makes them stale.

The default blend profile (and any profile named by a template) and the running
experiment's arms are read on every page that shows a widget, and change only when an
analyst publishes a profile or starts or stops an experiment. Each is kept per process
under a version stamp in the shared cache (:mod:`lookalike.stamps`): saving or deleting a
profile, an experiment or an arm bumps the stamp (the signals :func:`connect` registers,
for the admin's forms and :func:`~.services.profiles.publish_profile`), and so does
:func:`~.services.profiles.make_default`, whose rows are written with ``update()``, which
sends no signal. Every process serves the new profile or stops the experiment from its next
request on.
"""

from __future__ import annotations

from django.db.models.signals import post_delete, post_save

from lookalike.stamps import Stamped

__all__ = ["EXPERIMENTS", "PROFILES", "connect"]

#: ``BlendSettings`` by profile name (``None``: the default profile).
PROFILES = Stamped("recommendations.profiles")
#: The running experiment's arms (one key).
EXPERIMENTS = Stamped("recommendations.experiments")


def _profiles_changed(**kwargs):
    PROFILES.bump()
    # An arm's profile is read with the arms: a renamed profile changes what arms serve.
    EXPERIMENTS.bump()


def _experiments_changed(**kwargs):
    EXPERIMENTS.bump()


def connect():
    """Bump the stamps when the admin (or any code) saves or deletes what they cover."""
    from .models import BlendProfile, Experiment, ExperimentArm

    for kind, signal in (("save", post_save), ("delete", post_delete)):
        uid = f"recommendations.caching.{kind}"
        signal.connect(_profiles_changed, sender=BlendProfile, dispatch_uid=f"{uid}.profile")
        for model in (Experiment, ExperimentArm):
            signal.connect(_experiments_changed, sender=model, dispatch_uid=f"{uid}.{model}")
