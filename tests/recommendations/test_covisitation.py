"""The co-visitation table: counted at training, stored in the artefact, served per
shopper, and scored by the offline evaluation."""

from dataclasses import replace

import numpy as np
import pytest
import scipy.sparse as sp

from recommendations.blending.covisitation import (
    CoVisitation,
    covisitation_of,
    fit_covisitation,
    read_covisitation,
)
from tests.recommendations.blend_support import (  # noqa: F401 (fixture)
    blend_environment,
    event,
    train_model,
    two_taste_catalogue,
)


def _random_user_items(seed=0, n_users=40, n_items=12, density=0.3):
    rng = np.random.default_rng(seed)
    dense = (rng.random((n_users, n_items)) < density) * rng.uniform(1, 8, (n_users, n_items))
    return sp.csr_matrix(dense.astype(np.float32))


def test_counts_are_the_shoppers_who_had_both_products():
    user_items = _random_user_items()
    table = fit_covisitation(user_items, width=12)
    seen = (user_items.toarray() > 0).astype(int)
    expected = seen.T @ seen
    np.fill_diagonal(expected, 0)
    for item in range(user_items.shape[1]):
        kept = table.neighbours[item] >= 0
        pairs = zip(table.neighbours[item][kept], table.counts[item][kept], strict=True)
        got = {int(j): float(c) for j, c in pairs}
        assert got == {j: float(c) for j, c in enumerate(expected[item]) if c > 0}
        # Most co-visited first; an item is never its own neighbour.
        assert list(table.counts[item][kept]) == sorted(table.counts[item][kept], reverse=True)
        assert item not in got


def test_each_product_keeps_its_most_co_visited_neighbours_only():
    user_items = _random_user_items(seed=1, density=0.5)
    full = fit_covisitation(user_items, width=12)
    short = fit_covisitation(user_items, width=3)
    assert short.neighbours.shape == (12, 3)
    np.testing.assert_array_equal(short.counts, full.counts[:, :3])


def test_rows_with_few_neighbours_are_padded():
    # Product 2 was only ever looked at alone.
    user_items = sp.csr_matrix(np.array([[1, 1, 0], [1, 1, 0], [0, 0, 1]], dtype=np.float32))
    table = fit_covisitation(user_items, width=2)
    assert table.neighbours[2].tolist() == [-1, -1]
    assert table.counts[2].tolist() == [0.0, 0.0]
    assert table.neighbours[0].tolist() == [1, -1]
    assert table.counts[0].tolist() == [2.0, 0.0]


def test_a_shoppers_products_add_their_counts_and_are_left_out():
    table = CoVisitation(
        neighbours=np.array([[1, 2, 3], [0, 3, -1], [0, -1, -1], [1, 0, -1]], dtype=np.int32),
        counts=np.array([[5, 2, 1], [5, 4, 0], [2, 0, 0], [4, 1, 0]], dtype=np.float32),
    )
    items, scores = table.scores([0, 1])
    # 3: 1 (from 0) + 4 (from 1); 2: 2 (from 0); 0 and 1 are the shopper's own.
    assert items.tolist() == [3, 2]
    assert scores.tolist() == [5.0, 2.0]
    assert table.scores([])[0].size == 0
    assert table.scores([99])[0].size == 0


def test_the_table_survives_the_artefact(tmp_path):
    table = fit_covisitation(_random_user_items(), width=5)
    path = tmp_path / "model.npz"
    np.savez(path, **table.to_arrays())
    again = read_covisitation(path)
    np.testing.assert_array_equal(again.neighbours, table.neighbours)
    np.testing.assert_array_equal(again.counts, table.counts)
    np.savez(tmp_path / "old.npz", other=np.zeros(1))
    assert read_covisitation(tmp_path / "old.npz") is None


@pytest.mark.django_db
def test_training_stores_the_table_and_a_new_shopper_is_served_from_it(
    product_factory, category_factory
):
    from recommendations.blending.blend import recommend_for_user
    from recommendations.services import serving
    from recommendations.services.profiles import publish_profile

    data = two_taste_catalogue(product_factory, category_factory)
    train_model()
    model = serving.get_active_model()
    assert covisitation_of(model) is not None
    group_a = {p.pk for p in data["a"]}
    anchor = data["a"][0].pk
    found = model.covisited([anchor], k=20)
    # The shoppers who viewed an A product only ever viewed A products.
    assert found and {pid for pid, _ in found} <= group_a - {anchor}
    assert [s for _, s in found] == sorted((s for _, s in found), reverse=True)
    excluded = found[0][0]
    assert excluded not in {pid for pid, _ in model.covisited([anchor], 20, (excluded,))}

    # A shopper with one event, after training: the new-shopper weights are co-visitation.
    publish_profile(
        "together",
        {"affinity": 1.0},
        segments={"new_shopper": {"affinity": 0.0, "covisitation": 1.0}},
        diversity=("none", 0),
        make_default=True,
    )
    event(data["a"][0], session_key="newcomer")
    shown = recommend_for_user(session_key="newcomer", k=4)
    assert shown and all(r.product.pk in group_a for r in shown)
    assert all(r.components["covisitation"] > 0 for r in shown)


@pytest.mark.django_db
def test_a_model_stored_without_the_table_is_served_without_it(product_factory, category_factory):
    from recommendations.services import serving

    data = two_taste_catalogue(product_factory, category_factory)
    train_model()
    model = serving.get_active_model()
    path = serving.app_settings.ARTIFACT_DIR / model.artifact_path
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files if not k.startswith("lookalike_covisit")}
    older = path.with_name(f"older-{path.name}")
    np.savez(older, **arrays)
    model = replace(model, artifact_path=str(older))
    assert covisitation_of(model) is None
    assert model.covisited([data["a"][0].pk], k=5) == []
