"""Events become the user_items matrix: keys, kind weights, decay, windows."""

from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from recommendations.services.matrix import (
    build_event_matrix,
    event_weights,
    shopper_key,
    shopper_row,
)
from tests.recommendations.recsys_support import add_event, recsys_environment


@pytest.fixture(autouse=True)
def _environment(settings, tmp_path):
    yield from recsys_environment(settings, tmp_path)


pytestmark = pytest.mark.django_db


def cell(matrix, key, product):
    return float(matrix.user_items[matrix.user_index()[key], matrix.item_index()[product.pk]])


def test_rows_are_users_and_sessions_and_cells_sum_kind_weights(
    product_factory, django_user_model, settings
):
    settings.RECOMMENDATIONS_HALF_LIFE_DAYS = None
    p1, p2, p3 = product_factory(), product_factory(), product_factory()
    user = django_user_model.objects.create_user("ann", password="pw")
    add_event(p1, "view", user=user, session_key="ann-session")
    add_event(p1, "view", user=user)
    add_event(p2, "cart", user=user)
    add_event(p3, "purchase", user=user)
    add_event(p2, "similar_click", session_key="anon")
    add_event(p3, "view", session_key="")  # anonymous without a session: unusable

    matrix = build_event_matrix()

    assert matrix.user_keys.tolist() == ["s:anon", f"u:{user.pk}"]
    assert matrix.shape == (2, 3)
    assert matrix.item_ids.tolist() == sorted([p1.pk, p2.pk, p3.pk])
    assert cell(matrix, f"u:{user.pk}", p1) == 2.0  # two views, one with a session key
    assert cell(matrix, f"u:{user.pk}", p2) == 4.0
    assert cell(matrix, f"u:{user.pk}", p3) == 8.0
    assert cell(matrix, "s:anon", p2) == 2.0
    assert matrix.n_events == 5 and matrix.n_interactions == 4
    assert matrix.user_items.dtype == np.float32


def test_weights_follow_the_setting_and_increase_with_commitment(settings):
    weights = event_weights(["view", "similar_click", "cart", "purchase"], half_life_days=None)
    assert list(weights) == sorted(weights) and len(set(weights.tolist())) == 4
    settings.RECOMMENDATIONS_EVENT_WEIGHTS = {"purchase": 20.0}
    assert event_weights(["purchase", "view", "bogus"], half_life_days=None).tolist() == [
        20.0,
        1.0,
        0.0,
    ]


def test_time_decay_halves_the_weight_every_half_life(product_factory, settings):
    settings.RECOMMENDATIONS_HALF_LIFE_DAYS = 10
    old, new = product_factory(), product_factory()
    add_event(old, "cart", session_key="s1", days_ago=20)
    add_event(new, "cart", session_key="s1", days_ago=0)

    matrix = build_event_matrix()

    assert cell(matrix, "s:s1", old) == pytest.approx(1.0, rel=1e-3)  # 4 * 0.5 ** 2
    assert cell(matrix, "s:s1", new) == pytest.approx(4.0, rel=1e-3)
    no_decay = build_event_matrix(half_life_days=None)
    assert cell(no_decay, "s:s1", old) == 4.0


def test_window_and_simulated_filter(product_factory, settings):
    settings.RECOMMENDATIONS_HALF_LIFE_DAYS = None
    a, b, c = product_factory(), product_factory(), product_factory()
    add_event(a, "view", session_key="s1", days_ago=40)
    add_event(b, "view", session_key="s1", days_ago=1)
    add_event(c, "view", session_key="sim", days_ago=1, simulated=True)

    recent = build_event_matrix(since=timezone.now() - timedelta(days=30))
    assert set(recent.item_ids.tolist()) == {b.pk, c.pk}
    assert recent.data_from > timezone.now() - timedelta(days=2)
    real = build_event_matrix(include_simulated=False)
    assert set(real.user_keys.tolist()) == {"s:s1"}
    empty = build_event_matrix(since=timezone.now() + timedelta(days=1))
    assert empty.shape == (0, 0) and empty.data_from is None


def test_shopper_row_uses_the_models_columns_and_drops_unknown_products(product_factory):
    known, unknown = product_factory(), product_factory()
    add_event(known, "purchase", session_key="s1")
    add_event(unknown, "view", session_key="s1")
    row, n_events, newest = shopper_row({999_999: 0, known.pk: 1}, session_key="s1")
    assert row.shape == (1, 2)
    assert row[0, 1] == pytest.approx(8.0, rel=1e-3) and row[0, 0] == 0
    assert n_events == 1 and newest is not None
    assert shopper_row({known.pk: 0})[1] == 0  # nobody
    assert shopper_key(3, "abc") == "u:3" and shopper_key(None, "abc") == "s:abc"
