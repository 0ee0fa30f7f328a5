"""The category prior of photo search: how likely each category is to be a photo's.

A multinomial logistic regression from stored vectors to the catalogue's main categories,
fitted with the catalogue projection (:func:`~.projection.fit`) on catalogue items only and
kept in its file (:class:`~.projection.Projection`'s ``category_*`` fields). Photo search
adds a multiple of the log-probability of each candidate's category to its score
(:mod:`visualsearch.search.photo`), so that results stay in the category the photo most
likely shows. On the demo catalogue the classifier names the category of 0.88 of the
Fashion-MNIST test photos, and of 0.29-0.79 of the shopper photos, depending on their kind.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "DEFAULT_PRIOR_C",
    "PRIOR_MAX_ITEMS",
    "fit_category_prior",
    "log_probabilities",
    "prior_sample",
]

#: Inverse regularisation of the logistic regression (on standardised stored vectors): 0.01
#: was best of 0.01, 0.1 and 1 in three-fold cross-validation on the demo catalogue
#: (accuracy 0.95, 0.947, 0.945).
DEFAULT_PRIOR_C = 0.01
#: Items the prior is fitted on at most: the fit takes a few seconds at the demo's 6,000
#: and grows with the items.
PRIOR_MAX_ITEMS = 50_000


def fit_category_prior(vectors, labels, c: float = DEFAULT_PRIOR_C, seed: int = 0) -> dict:
    """A multinomial logistic regression from stored vectors to their categories, as the
    :class:`Projection` fields ``category_coef``, ``category_intercept`` and
    ``category_labels``.

    Fitted on standardised vectors (scikit-learn's ``lbfgs``), then folded into one linear
    map of the vectors as stored, so applying it is one matrix product. At most about
    :data:`PRIOR_MAX_ITEMS` items, the same share of each category, drawn with ``seed``.
    """
    from sklearn.linear_model import LogisticRegression

    y = np.asarray(labels).astype(str)
    keep = prior_sample(y, seed)
    x, y = np.asarray(vectors)[keep].astype(np.float64), y[keep]
    mean, sd = x.mean(axis=0), x.std(axis=0) + 1e-8
    model = LogisticRegression(C=c, max_iter=500)
    model.fit((x - mean) / sd, y)
    coef = model.coef_.T / sd[:, None]  # (dim, n_labels)
    intercept = model.intercept_ - mean @ coef
    if coef.shape[1] == 1:  # two labels: one logit for the second against the first
        coef = np.hstack([np.zeros_like(coef), coef])
        intercept = np.concatenate([[0.0], intercept])
    return {
        "category_coef": coef.astype(np.float32),
        "category_intercept": np.asarray(intercept, dtype=np.float32),
        "category_labels": tuple(str(label) for label in model.classes_),
    }


def prior_sample(labels, seed: int = 0) -> np.ndarray:
    """Positions of the items the prior is fitted on: all of them up to
    :data:`PRIOR_MAX_ITEMS`, else the same share of every category, at least one item each,
    so that no category goes missing. Drawn before anything is computed for them, so that a
    large catalogue is never mapped or copied whole for the prior."""
    y = np.asarray(labels).astype(str)
    if len(y) <= PRIOR_MAX_ITEMS:
        return np.arange(len(y))
    rng, share = np.random.default_rng(seed), PRIOR_MAX_ITEMS / len(y)
    return np.sort(
        np.concatenate(
            [
                rng.choice(members, max(1, int(len(members) * share)), replace=False)
                for members in (np.flatnonzero(y == label) for label in np.unique(y))
            ]
        )
    )


def log_probabilities(vectors, coef, intercept) -> np.ndarray:
    """``log p(category | vector)``, ``(n, n_labels)``: a log-softmax of the linear map,
    stable for any logits."""
    logits = np.asarray(vectors, dtype=np.float64) @ coef
    logits += intercept
    logits -= logits.max(axis=1, keepdims=True)
    return logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
