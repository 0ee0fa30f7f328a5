"""Product keys in numpy arrays and in ``.npz`` artefacts, integers or UUIDs alike.

In memory, keys keep the type the database gives them (``int`` or ``uuid.UUID``), so that
they match the keys of querysets and events: integer keys in an ``int64`` array, any other
in an ``object`` array. In ``.npz`` files, which are read with ``allow_pickle=False``,
object arrays cannot be stored: other keys are written as text and parsed back by the
catalogue adapter.
"""

import numpy as np

__all__ = ["first_not_in", "from_storable", "native", "row_id", "to_array", "to_storable"]

#: The largest value of PostgreSQL's ``bigint``, the widest integer key a row may have.
MAX_ROW_ID = 2**63 - 1


def row_id(text):
    """``text`` (from a URL or a form) as an integer row id, or ``None`` unless it is ASCII
    digits within ``bigint``: ``str.isdigit`` also accepts "²" and "①", which ``int()``
    refuses, and a longer number makes the database refuse the query."""
    text = str(text or "")
    if not (text.isascii() and text.isdigit()) or len(text) > 19:
        return None
    value = int(text)
    return value if value <= MAX_ROW_ID else None


def to_array(keys) -> np.ndarray:
    """``keys`` as an ``int64`` array when they are all integers, else an ``object`` array."""
    keys = list(keys)
    if all(isinstance(k, int | np.integer) and not isinstance(k, bool) for k in keys):
        return np.asarray(keys, dtype=np.int64)
    out = np.empty(len(keys), dtype=object)
    out[:] = keys
    return out


def to_storable(array) -> np.ndarray:
    """An array of keys that ``np.savez`` writes without pickling (text for non-integers)."""
    array = np.asarray(array)
    if array.dtype.kind in "iu":
        return array.astype(np.int64)
    return np.asarray([str(k) for k in array.tolist()], dtype=str)


def from_storable(array) -> np.ndarray:
    """The keys :func:`to_storable` wrote, back in their database type."""
    array = np.asarray(array)
    if array.dtype.kind in "iu":
        return array.astype(np.int64)
    from .catalogue import get_adapter

    adapter = get_adapter()
    return to_array(adapter.parse_pk(k) for k in array.tolist())


def native(key):
    """A key read from a numpy array as the database gives it (``np.int64`` -> ``int``)."""
    return int(key) if isinstance(key, np.integer) else key


def first_not_in(keys, exclude, n):
    """Positions of the first ``n`` keys of the array ``keys`` that are not in ``exclude``,
    in order.

    Reads the array only as far as it must, in chunks that double: a ranking of a million
    products is walked for a dozen of them on every request, and turning it whole into a
    list first cost tens of milliseconds each time.
    """
    out = []
    start, step = 0, max(n + len(exclude), 16)
    while len(out) < n and start < len(keys):
        for offset, key in enumerate(keys[start : start + step].tolist()):
            if key not in exclude:  # tolist() gives the keys as the database does
                out.append(start + offset)
                if len(out) == n:
                    break
        start += step
        step *= 2
    return out
