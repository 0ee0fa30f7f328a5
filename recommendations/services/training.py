"""Train the collaborative-filtering model on the shop's events and make it the served one.

:func:`train` is the one entry point: the ``train_recommender`` command, the admin's
"Train now" (through the :func:`train_job` background job) and the tests call it.

Order of work, chosen so that nothing half-done is ever served:

1. build ``user_items`` from the events (:mod:`.matrix`);
2. evaluate on a per-user 75/25 holdout first (a model fitted on the training part,
   against the popularity baseline), so the figures stored with the model are honest;
3. fit the served model on all the data;
4. write the artefact to a temporary file and ``os.replace`` it into place;
5. only then create the :class:`~recommendations.models.RecommenderModel` row and, in
   one transaction, switch the active version.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from datetime import timedelta

import numpy as np
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext, ngettext

from lookalike.jobs.services import JobFailed, enqueue, job_handler
from lookalike.keys import from_storable, to_storable

from ..blending.coldstart import fit_for_items
from ..blending.covisitation import fit_covisitation
from ..conf import app_settings
from ..models import RecommenderModel
from .als_parameters import als_parameters
from .matrix import build_event_matrix

logger = logging.getLogger(__name__)

__all__ = [
    "TRAIN_LOCK_KEY",
    "NoInteractions",
    "train",
    "train_job",
    "start_training",
    "activate_version",
    "latest_training_job",
    "write_artifact",
    "read_artifact_ids",
]

TRAIN_LOCK_KEY = "recommendations.train"
TRAIN_HANDLER = "recommendations.services.training.train_job"

# Arrays this app stores in the artefact beside the recommender's own.
_USER_KEYS = "lookalike_user_keys"
_ITEM_IDS = "lookalike_item_ids"


class NoInteractions(JobFailed):
    """There are no events to train on (a training job ends failed with this message)."""


def write_artifact(recommender, user_keys, item_ids, directory=None, extra=None):
    """Write a fitted recommender and its row/column ids to one ``.npz``, atomically.

    The file is written under a temporary name in the same folder, flushed to disk and
    renamed over its final name (``os.replace`` is atomic on one file system), so a
    reader finds either no file or a complete one.

    Parameters
    ----------
    recommender : recommendations.recommenders.Recommender
        Fitted.
    user_keys : ndarray of str, shape (n_users,)
    item_ids : ndarray of int64 (or object, for UUID keys), shape (n_items,)
    directory : Path, optional
        ``RECOMMENDATIONS_ARTIFACT_DIR`` by default.
    extra : dict, optional
        More arrays to store beside them (the cold-start map's,
        :meth:`~recommendations.blending.coldstart.ColdStartMap.to_arrays`, and the
        co-visitation table's,
        :meth:`~recommendations.blending.covisitation.CoVisitation.to_arrays`).

    Returns
    -------
    Path
        The final file.
    """
    directory = app_settings.ARTIFACT_DIR if directory is None else directory
    directory.mkdir(parents=True, exist_ok=True)
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    final = directory / f"{recommender.name}-{stamp}-{uuid.uuid4().hex[:8]}.npz"
    scratch = directory / f".{final.stem}.part.npz"
    temp = directory / f".{final.stem}.tmp"
    try:
        # The recommender writes its own arrays; ours are added beside them.
        recommender.save(scratch)
        with np.load(scratch, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
        arrays[_USER_KEYS] = np.asarray(user_keys, dtype=str)
        arrays[_ITEM_IDS] = to_storable(item_ids)
        arrays.update(extra or {})
        with open(temp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, final)
    finally:
        for path in (scratch, temp):
            path.unlink(missing_ok=True)
    return final


def read_artifact_ids(path):
    """The ``(user_keys, item_ids)`` stored by :func:`write_artifact`."""
    with np.load(path, allow_pickle=False) as npz:
        return npz[_USER_KEYS].astype(str), from_storable(npz[_ITEM_IDS])


def _create_row(**fields):
    """Create the row with the next version; a concurrent training retries the number."""
    for _ in range(5):
        try:
            with transaction.atomic():
                last = RecommenderModel.objects.aggregate(v=Max("version"))["v"] or 0
                return RecommenderModel.objects.create(version=last + 1, **fields)
        except IntegrityError:
            continue
    raise RuntimeError("Could not allocate a model version; another training keeps racing.")


def train(
    factors=None,
    regularization=None,
    alpha=None,
    iterations=None,
    *,
    days=None,
    include_simulated=True,
    evaluate=True,
    k=10,
    seed=0,
    progress=None,
    activate=True,
    user=None,
):
    """Train an ALS model on the events, store it as a new version and activate it.

    Parameters
    ----------
    factors, regularization, alpha, iterations
        ALS parameters; ``RECOMMENDATIONS_ALS_PARAMETERS`` for those left out.
    days : int, optional
        Train on the events of the last ``days`` days; ``RECOMMENDATIONS_TRAINING_WINDOW_DAYS``
        (all events) by default.
    include_simulated : bool
        Whether events of ``simulate_shoppers`` count.
    evaluate : bool
        Score a model fitted on a per-user 75/25 split against popularity first.
    k : int
        Cut-off of the evaluation.
    seed : int
        Seed of the split and of the factors' initialisation.
    progress : callable, optional
        ``progress(done, total, message)``, called after every ALS iteration.
    activate : bool
        Make the new version the served one.
    user : User, optional
        Who asked for it.

    Returns
    -------
    RecommenderModel

    Raises
    ------
    NoInteractions
        When the window has no events.
    """
    from ..recommenders import ALSRecommender

    started = time.monotonic()
    params = als_parameters(factors, regularization, alpha, iterations)
    days = app_settings.TRAINING_WINDOW_DAYS if days is None else days
    now = timezone.now()
    report = progress or (lambda done, total, message: None)

    report(0, 1, gettext("Reading events"))
    matrix = _event_matrix(days, now, include_simulated)
    n_iter = params["iterations"]
    total = n_iter * (2 if evaluate else 1) + 1

    def stage(offset, message):
        return lambda done, _total: report(offset + done, total, message)

    def new_model():
        return ALSRecommender(random_state=seed, **params)

    figures = {}
    if evaluate:
        report(0, total, gettext("Evaluating on a 75/25 holdout"))
        figures = _holdout_figures(
            matrix.user_items, new_model, k, seed, stage(0, gettext("Evaluating on a holdout"))
        )
    offset = n_iter if evaluate else 0
    fitting = stage(offset, gettext("Fitting on all events"))
    model = new_model().fit(matrix.user_items, callback=fitting)

    # The map from photos to taste (new products) and the co-views are fitted here too.
    report(total - 1, total, gettext("Learning new products' taste from their photos; saving"))
    parameters = {**params, "seed": seed, "days": days, "include_simulated": include_simulated}
    row = _store(model, matrix, parameters, figures, now, started, user, activate)
    report(total, total, _trained_message(row))
    logger.info(
        "Trained recommender v%s on %s events in %.1fs",
        row.version,
        matrix.n_events,
        row.training_seconds,
    )
    return row


def _trained_message(row):
    if row.is_active:
        return gettext("Trained version %(version)s, now served") % {"version": row.version}
    return gettext("Trained version %(version)s (not activated)") % {"version": row.version}


def _event_matrix(days, now, include_simulated):
    """The events of the training window as a matrix; :class:`NoInteractions` if none."""
    since = now - timedelta(days=days) if days else None
    matrix = build_event_matrix(since=since, now=now, include_simulated=include_simulated)
    if matrix.n_interactions == 0:
        if days:
            message = ngettext(
                "There are no shopper events in the last day to train on. Browse the shop "
                "or run `manage.py simulate_shoppers` first.",
                "There are no shopper events in the last %(days)s days to train on. Browse "
                "the shop or run `manage.py simulate_shoppers` first.",
                days,
            ) % {"days": days}
        else:
            message = gettext(
                "There are no shopper events to train on. Browse the shop or run "
                "`manage.py simulate_shoppers` first."
            )
        raise NoInteractions(message)
    return matrix


def _holdout_figures(user_items, new_model, k, seed, callback):
    """A model fitted on a per-user 75/25 split, scored against popularity."""
    from ..evaluation import compare_with_popularity, train_test_split_per_user

    train_part, test_part = train_test_split_per_user(user_items, 0.25, seed=seed)
    holdout = new_model().fit(train_part, callback=callback)
    try:
        figures = compare_with_popularity(holdout, train_part, test_part, k=k, fit=False)
    except ValueError as exc:  # too little data: no user with items on both sides
        figures = {"skipped": str(exc)}
    figures.update(
        k=k,
        protocol="per-user random 75/25 holdout",
        test_users=int((np.diff(test_part.indptr) > 0).sum()),
    )
    return figures


def _store(model, matrix, parameters, figures, now, started, user, activate):
    """Write the artefact and its row (the next version), and activate it; the artefact is
    removed again if the row cannot be written."""
    cold_start = _cold_start(model, matrix.item_ids)
    extra = cold_start.to_arrays() if cold_start is not None else {}
    covisitation = _covisitation(matrix.user_items)
    if covisitation is not None:
        extra.update(covisitation.to_arrays())
    path = write_artifact(model, matrix.user_keys, matrix.item_ids, extra=extra)
    try:
        row = _create_row(
            trained_at=now,
            data_from=matrix.data_from,
            data_to=matrix.data_to,
            parameters={
                **parameters,
                "event_weights": matrix.weights,
                "half_life_days": matrix.half_life_days,
            },
            n_users=matrix.shape[0],
            n_items=matrix.shape[1],
            n_interactions=matrix.n_interactions,
            n_events=matrix.n_events,
            evaluation=figures,
            artifact_path=str(path.relative_to(app_settings.ARTIFACT_DIR)),
            training_seconds=round(time.monotonic() - started, 3),
            created_by=user if user is not None and user.is_authenticated else None,
        )
        if activate:
            row.activate()
    except BaseException:
        if not RecommenderModel.objects.filter(artifact_path=path.name).exists():
            path.unlink(missing_ok=True)
        raise
    return row


def _cold_start(model, item_ids):
    """The map from products' content to the model's item factors, which scores products
    added after training (:mod:`~recommendations.blending.coldstart`); ``None`` when the
    catalogue has too few embeddings, or when fitting it fails: the model is served
    without it, as before."""
    if getattr(model, "item_factors", None) is None:
        return None
    try:
        return fit_for_items(model.item_factors, item_ids)
    except Exception:  # the map is an extra: never lose a trained model to it
        logger.exception("The cold-start map could not be fitted; storing the model without it.")
        return None


def _covisitation(user_items):
    """The products each product was looked at with, which serves shoppers with one or two
    events (:mod:`~recommendations.blending.covisitation`); ``None`` when counting them
    fails: the model is served without it."""
    try:
        return fit_covisitation(user_items)
    except Exception:  # the table is an extra: never lose a trained model to it
        logger.exception(
            "The co-visitation table could not be counted; storing the model without it."
        )
        return None


@job_handler
def train_job(ctx, **params):
    """Background job: :func:`train` with progress written to the job row."""
    from django.contrib.auth import get_user_model

    user = None
    if ctx.job.created_by_id is not None:
        user = get_user_model().objects.filter(pk=ctx.job.created_by_id).first()

    def progress(done, total, message):
        ctx.progress(done, total, message, force=done >= total)

    row = train(progress=progress, user=user, **params)
    return {
        "version": row.version,
        "model_id": row.pk,
        "users": row.n_users,
        "items": row.n_items,
        "interactions": row.n_interactions,
        "evaluation": row.evaluation,
        "seconds": row.training_seconds,
    }


def activate_version(row):
    """Serve ``row``'s model from now on (serving processes notice within seconds).

    Raises
    ------
    FileNotFoundError
        When its artefact is gone; nothing changes then.
    """
    row.activate()
    logger.info("Recommender v%s activated", row.version)
    return row


def latest_training_job():
    """The most recent training job, or ``None``."""
    from lookalike.jobs.models import Job

    return Job.objects.filter(lock_key=TRAIN_LOCK_KEY).order_by("-created_at").first()


def start_training(user=None, **params):
    """Queue a training job; raises ``lookalike.jobs.services.JobAlreadyRunning`` if one is active.

    Returns
    -------
    lookalike.jobs.models.Job
    """
    return enqueue(TRAIN_HANDLER, lock_key=TRAIN_LOCK_KEY, params=params, user=user)
