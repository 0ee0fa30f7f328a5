"""``lookalike.keys``: walking a ranking for its first keys outside an exclusion."""

import uuid

import numpy as np

from lookalike.keys import first_not_in


def test_first_keys_outside_the_exclusion_in_order():
    keys = np.arange(100, 0, -1, dtype=np.int64)  # 100, 99, ..., 1
    positions = first_not_in(keys, {100, 98, 97}, 3)
    assert positions == [1, 4, 5]
    assert keys[positions].tolist() == [99, 96, 95]


def test_it_walks_past_a_long_excluded_head_and_stops_at_the_end():
    keys = np.arange(1000, dtype=np.int64)
    head = set(range(500))  # longer than the first chunks
    assert keys[first_not_in(keys, head, 2)].tolist() == [500, 501]
    assert first_not_in(keys, set(range(998)), 5) == [998, 999]  # fewer left than asked
    assert first_not_in(keys, set(), 0) == []
    assert first_not_in(np.empty(0, dtype=np.int64), set(), 3) == []


def test_object_keys_such_as_uuids():
    keys = np.empty(3, dtype=object)
    keys[:] = [uuid.UUID(int=3), uuid.UUID(int=2), uuid.UUID(int=1)]
    assert first_not_in(keys, {uuid.UUID(int=3)}, 1) == [1]
