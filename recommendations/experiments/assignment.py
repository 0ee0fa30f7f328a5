"""Which arm of an experiment a shopper gets: a pure function of the experiment and the
shopper, so that every request, process and machine agrees without storing anything.

The shopper's key is their user id when signed in, else the stored (hashed) session key.
The key and the experiment's id are hashed with SHA-256 into a number ``u`` in [0, 1),
and the arms are laid end to end on [0, 1) by their traffic shares: the arm whose slice
holds ``u`` is the shopper's. SHA-256 spreads keys evenly, so each arm gets its share of
shoppers up to sampling noise, and a different experiment reshuffles shoppers
independently of the previous one.

A shopper who signs in during an experiment is re-assigned by their user id from then on
(Django gives the session a new key at sign-in, so the anonymous arm could not be kept
anyway). They change arm at most once, at sign-in, and keep the user's arm on every
device afterwards; each impression records the arm it was served under, so their clicks
still count for the arm that showed the strip.
"""

from __future__ import annotations

import hashlib

__all__ = ["bucket", "choose_arm", "shopper_key"]


def shopper_key(user_id=None, session_key=None):
    """``"user:<id>"``, ``"session:<stored key>"`` or ``None`` for a shopper we cannot
    recognise again (no user, no session)."""
    if user_id is not None:
        return f"user:{user_id}"
    if session_key:
        return f"session:{session_key}"
    return None


def bucket(experiment_id, key):
    """The shopper's point in [0, 1) for one experiment (uniform over keys)."""
    digest = hashlib.sha256(f"{experiment_id}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def choose_arm(arms, point):
    """The arm whose slice of [0, 1) holds ``point``.

    Parameters
    ----------
    arms : sequence of (arm, share)
        In a fixed order (the arms' positions); shares are positive relative weights.
    point : float
        From :func:`bucket`.

    Returns
    -------
    The chosen arm, or ``None`` without arms.
    """
    total = float(sum(share for _, share in arms))
    if not arms or total <= 0:
        return None
    edge = 0.0
    for arm, share in arms:
        edge += share / total
        if point < edge:
            return arm
    return arms[-1][0]  # point within rounding of 1.0
