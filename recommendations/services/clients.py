"""What one client address can weigh: its anonymous sessions together, as one shopper.

A shopper's weight is capped (:func:`recommendations.services.matrix.cap_weights`), but a
new anonymous session costs a script nothing: one address that starts a new cookie jar
every two requests is hundreds of shoppers. So the anonymous events of one address
(``Event.client``, a keyed hash of it) are grouped into one *row*, ``"c:<client>"``:

* on each product the row weighs what its heaviest session weighs there, each session
  capped as a shopper first, or the sum of its ``N`` heaviest with
  ``N = RECOMMENDATIONS_MAX_CLIENT_SHOPPERS`` (1 by default): a thousand sessions that each
  clicked a product once weigh one click;
* in training the row is one row of the interaction matrix, its total capped at ``N``
  times ``RECOMMENDATIONS_MAX_SHOPPER_WEIGHT``. It has to be one row, not many light
  ones: implicit ALS reads every non-zero cell as a preference, whatever its weight, so a
  thousand rows of weight 0.001 would still pull the product's factors a thousand times.

"Popular now", the blend's popularity, the model and the offline evaluation's popularity
(:func:`recommendations.blending.asof.capped_popularity`) all read rows through this
module, so they agree. (The evaluation's own ALS fit keeps a row per shopper: it scores
each shopper from their trained row.) Signed-in users keep one row each (``"u:<id>"``),
whatever their address: an account is the shop's own identity. Events without an address
(recorded before it was stored, or by commands such as ``simulate_shoppers``) keep one row
per session (``"s:<session key>"``), as before; so do all events while the setting is
``None`` or 0.

The price is that real shoppers who share an address (a household, an office, a
carrier's NAT) count as one while they are anonymous: for a crowd signal such as
popularity that costs little, and each keeps their own session for "For you", which is
personalised from the session's own events. An address with one session alone, the
usual case, gives its row that session's key (:func:`named_rows`): the shopper keeps a
trained row of their own; a session that shares its address's row has none, and serving
folds it in from its events, as for a session the model never saw. A deployment behind a
reverse proxy must say so (DRF's ``NUM_PROXIES``), or every shopper has the proxy's
address.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import scipy.sparse as sp
from django.db.models import Case, CharField, F, Q, Value, When
from django.db.models.functions import Cast, Concat

from ..conf import app_settings

__all__ = [
    "client_shoppers",
    "named_rows",
    "row_expression",
    "shopper_expression",
    "shoppers_in_rows",
    "top_shoppers",
]


def client_shoppers() -> int:
    """How many of an address's sessions count on a product (``MAX_CLIENT_SHOPPERS``);
    0 when addresses are not grouped."""
    return int(app_settings.MAX_CLIENT_SHOPPERS or 0)


def _user():
    return When(
        user__isnull=False, then=Concat(Value("u:"), Cast("user_id", output_field=CharField()))
    )


def _session():
    return Concat(Value("s:"), F("session_key"))


def shopper_expression():
    """An event's shopper: ``"u:<user id>"`` or ``"s:<session key>"``."""
    return Case(_user(), default=_session(), output_field=CharField())


def row_expression():
    """An event's row: its shopper, except that an anonymous event with an address
    belongs to the address's row ``"c:<client>"`` (while addresses are grouped)."""
    if not client_shoppers():
        return shopper_expression()
    address = When(~Q(client=""), then=Concat(Value("c:"), F("client")))
    return Case(_user(), address, default=_session(), output_field=CharField())


def shoppers_in_rows(who, row):
    """Number the events' shoppers within their rows.

    A shopper is a (row, shopper) pair, so that a session seen from two addresses weighs
    in both rows.

    Parameters
    ----------
    who, row : ndarray of str, shape (n_events,)
        Each event's shopper and row key (:func:`shopper_expression`,
        :func:`row_expression`).

    Returns
    -------
    shopper : ndarray of int, shape (n_events,)
        Each event's shopper.
    shopper_rows : ndarray of int, shape (n_shoppers,)
        Each shopper's row.
    row_keys : ndarray of str, shape (n_rows,)
        Sorted.
    """
    shopper_keys, shopper_index = np.unique(who, return_inverse=True)
    row_keys, row_index = np.unique(row, return_inverse=True)
    n = max(len(shopper_keys), 1)
    pairs, shopper = np.unique(row_index.astype(np.int64) * n + shopper_index, return_inverse=True)
    return shopper.ravel(), pairs // n, row_keys


def top_shoppers(per_shopper, rows, n_rows, shoppers=None):
    """Merge shoppers into their rows: on each product, the sum of the row's ``shoppers``
    heaviest shoppers (:func:`client_shoppers` by default).

    Parameters
    ----------
    per_shopper : csr_matrix, shape (n_shoppers, n_items)
        Each shopper's (capped) weights.
    rows : ndarray of int, shape (n_shoppers,)
        The row each shopper belongs to.
    n_rows : int
    shoppers : int, optional

    Returns
    -------
    csr_matrix, shape (n_rows, n_items)
        Of ``per_shopper``'s dtype.
    """
    shoppers = max(client_shoppers() if shoppers is None else int(shoppers), 1)
    cells = per_shopper.tocoo()
    row = np.asarray(rows, dtype=np.int64)[cells.row]
    column = cells.col.astype(np.int64)
    value = cells.data
    order = np.lexsort((-value, column, row))  # each (row, column) heaviest first
    row, column, value = row[order], column[order], value[order]
    cell = row * per_shopper.shape[1] + column
    first = np.r_[True, cell[1:] != cell[:-1]] if len(cell) else np.zeros(0, dtype=bool)
    positions = np.arange(len(cell))
    rank = positions - np.maximum.accumulate(np.where(first, positions, 0))
    keep = rank < shoppers
    merged = sp.coo_matrix(
        (value[keep], (row[keep], column[keep])), shape=(n_rows, per_shopper.shape[1])
    )
    return sp.csr_matrix(merged)  # duplicates (the top N) are summed


def named_rows(row_keys, shopper_rows, shopper_keys):
    """The model's key of each row: an address's row (``"c:<client>"``) that holds one
    shopper alone takes that shopper's key, so that serving finds the shopper's trained
    row; rows of several shoppers keep the address's key.

    A lone shopper's key is kept only where no other row has it (a session whose events
    came from two addresses, or partly from none, weighs in several rows).

    Parameters
    ----------
    row_keys : ndarray of str, shape (n_rows,)
    shopper_rows : ndarray of int, shape (n_shoppers,)
        The row of each shopper (:func:`shoppers_in_rows`).
    shopper_keys : ndarray of str, shape (n_shoppers,)
        Each shopper's own key (``"s:<session key>"``).

    Returns
    -------
    ndarray of str, shape (n_rows,)
    """
    keys = np.asarray(row_keys, dtype=object).copy()
    counts = np.bincount(shopper_rows, minlength=len(keys))
    owner = np.empty(len(keys), dtype=np.int64)
    owner[shopper_rows] = np.arange(len(shopper_rows))
    lone = [r for r in np.flatnonzero(counts == 1) if str(keys[r]).startswith("c:")]
    wanted = {r: str(shopper_keys[owner[r]]) for r in lone}
    taken = set(map(str, keys))
    clashes = {key for key, n in Counter(wanted.values()).items() if n > 1}
    for r, key in wanted.items():
        if key not in taken and key not in clashes:
            keys[r] = key
    return keys.astype(str)
