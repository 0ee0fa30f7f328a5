"""Which segment each candidate of a blend is in, and the collaborative scores of products
the ALS model does not know.

A profile may weigh its components differently per segment
(:attr:`~recommendations.models.BlendProfile.segments`, :data:`.core.SEGMENTS`),
chosen at serving time from what the shop knows, so that a blend leans on visual
similarity where ALS has nothing to say:

``cold_item``
    a candidate the active ALS model has no factors for (nobody had interacted with it
    when the model was trained);
``new_shopper``
    in "For you", every other candidate when the shopper has at most
    :data:`~.core.NEW_SHOPPER_EVENTS` events (none, for a shopper the shop does not
    know). "Similar items" leaves it out: there the product being viewed, not the
    shopper's history, says what to show, and the segment's weights (tuned on "For you")
    would trade its looks for popularity.

Cold candidates also get the collaborative components ALS cannot give them, from the
model's :class:`~.coldstart.ColdStartMap`: ``affinity`` is the shopper's factors' dot
product with the candidate's predicted factors, ``collaborative`` the best cosine
between those and the factors of the shopper's recent products (or of the product
being viewed). Only candidates with an image embedding are predicted: one without (no
photo yet, or a photo that could not be read) keeps no collaborative score rather than
its category's average. Without a model, no candidate is cold: the profile's own weights apply
and the components without scores add nothing, as before.
"""

from __future__ import annotations

import numpy as np

from .coldstart import cold_start_of
from .core import COMPONENTS, NEW_SHOPPER_EVENTS

__all__ = ["candidate_segments", "cold_columns", "event_count", "is_new_shopper"]

_AFFINITY = COMPONENTS.index("affinity")
_COLLABORATIVE = COMPONENTS.index("collaborative")


def event_count(shopper):
    """How many events the shopper has: ``Shopper.n_events`` when the source counted
    them, else those it read (``Shopper.events``); 0 for nobody."""
    if shopper.n_events is not None:
        return int(shopper.n_events)
    rows = getattr(shopper.events, "rows", None)
    return len(rows) if rows is not None else 0


def is_new_shopper(shopper):
    return event_count(shopper) <= NEW_SHOPPER_EVENTS


def _model(source):
    return source.model if source.has_model else None


def cold_columns(source, scored, shopper, context_ids):
    """Mark the cold candidates and score them from the cold-start map.

    Parameters
    ----------
    source : CandidateSource
        With ``model`` (an :class:`~recommendations.services.serving.ActiveModel`) when
        ``has_model``.
    scored : Scored
        From :func:`.candidates.score_candidates`; its ``raw`` gets the cold candidates'
        ``affinity`` and ``collaborative`` where they have none.
    shopper : Shopper
    context_ids : sequence
        The product being viewed, or the shopper's recent products.

    Returns
    -------
    ndarray of bool, shape (len(scored.ids),)
        Which candidates the model has no factors for.
    """
    model = _model(source)
    if model is None:
        return np.zeros(len(scored.ids), dtype=bool)
    cold = np.asarray([pid not in model.item_index for pid in scored.ids], dtype=bool)
    mapping = cold_start_of(model)
    if not cold.any() or mapping is None or scored.embeddings is None:
        return cold
    if scored.embeddings.shape[1] != mapping.dim:
        return cold  # embeddings of another encoder than the map was fitted on
    # A product without a vector (no photo, or one that failed) would be predicted from
    # its category alone: the category's average taste, close to every shopper's, which
    # put such products above the real neighbours. Its collaborative scores stay unknown.
    rows = np.flatnonzero(cold & np.any(scored.embeddings != 0, axis=1))
    if not len(rows):
        return cold
    predicted = mapping.factors(scored.embeddings[rows], [scored.categories[i] for i in rows])
    _fill(scored.raw, rows, _AFFINITY, _affinity(model, shopper, predicted))
    _fill(scored.raw, rows, _COLLABORATIVE, _collaborative(model, context_ids, predicted))
    return cold


def _fill(raw, rows, column, values):
    if values is None:
        return
    current = raw[rows, column]
    raw[rows, column] = np.where(np.isnan(current), values, current)


def _affinity(model, shopper, predicted):
    if shopper.key is None:
        return None
    user_id, session_key = shopper.key
    vector = model.user_vector(user_id=user_id, session_key=session_key)
    return None if vector is None else predicted @ np.asarray(vector, dtype=np.float64)


def _collaborative(model, context_ids, predicted):
    columns = [model.item_index[p] for p in context_ids if p in model.item_index]
    if not columns:
        return None
    known = np.asarray(model.recommender.item_factors[columns], dtype=np.float64)
    known = known / np.maximum(np.linalg.norm(known, axis=1, keepdims=True), 1e-12)
    unit = predicted / np.maximum(np.linalg.norm(predicted, axis=1, keepdims=True), 1e-12)
    return (unit @ known.T).max(axis=1)


def candidate_segments(cold, shopper=None):
    """Each candidate's segment: ``"cold_item"`` for a cold candidate, else
    ``"new_shopper"`` when ``shopper`` (given for "For you" only) is a new shopper, else
    ``None`` (the profile's own weights)."""
    rest = "new_shopper" if shopper is not None and is_new_shopper(shopper) else None
    return ["cold_item" if c else rest for c in np.asarray(cold, dtype=bool).tolist()]
