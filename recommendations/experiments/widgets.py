"""The hook the widget template tags call: which profile a shopper's strip uses while an
experiment runs, and the recording of what it showed.

A strip takes part only when the template did not ask for a profile by name (an explicit
``profile=`` is the page's choice, not the experiment's), and only for shoppers whose
events would count (:mod:`recommendations.events`): a signed-in user or an anonymous
session, never a bot or a ``HEAD`` request. A strip whose blend fell back to another
profile (the arm's failed) is not recorded, so an arm's figures are only its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from ..caching import EXPERIMENTS
from ..conf import app_settings
from ..events import request_shopper
from .assignment import bucket, choose_arm, shopper_key
from .recording import record_impressions, shown_again
from .services import running_arms

__all__ = ["Trial", "trial_for"]


@dataclass(frozen=True)
class Trial:
    """A shopper's place in the running experiment for one strip."""

    arm: object
    user_id: int | None
    session_key: str | None

    @property
    def profile_name(self):
        return self.arm.profile.name

    def record(self, recommendations, widget, served_profile):
        """Record the strip and return its recommendation id (``""`` when the strip is
        empty or was served by another profile than the arm's); the same strip shown
        again to this shopper within the view window keeps its id and records nothing."""
        if not recommendations or served_profile != self.profile_name:
            return ""
        shopper = {"user_id": self.user_id, "session_key": self.session_key or ""}
        products = [rec.product.pk for rec in recommendations]
        within = timedelta(seconds=app_settings.VIEW_WINDOW_SECONDS)
        again = shown_again(self.arm, widget, products, within=within, **shopper)
        return again or record_impressions(self.arm, widget, products, **shopper)


def _countable(request):
    if request.method not in ("GET", "POST"):
        return False
    pattern = app_settings.BOT_USER_AGENTS
    agent = request.META.get("HTTP_USER_AGENT", "")
    return not (pattern and re.search(pattern, agent, re.IGNORECASE))


def assign(arms, user_id=None, session_key=None):
    """The arm of ``arms`` (one experiment's, control first) for this shopper, or ``None``
    for a shopper who cannot be recognised again."""
    key = shopper_key(user_id, session_key)
    if key is None or not arms:
        return None
    return choose_arm([(arm, arm.share) for arm in arms], bucket(arms[0].experiment_id, key))


def trial_for(request, profile=None):
    """The :class:`Trial` for a strip on ``request``, or ``None`` when no experiment runs,
    the template named a profile, or the shopper does not take part."""
    if profile or request is None or not _countable(request):
        return None
    user, session_key = request_shopper(request)
    user_id = user.pk if user is not None else None
    if user_id is None and not session_key:
        return None
    # Kept per process until an experiment or arm is saved (start and stop save it).
    arm = assign(EXPERIMENTS.get("running", running_arms), user_id, session_key)
    if arm is None:
        return None
    return Trial(arm, user_id, session_key)
