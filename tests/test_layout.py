"""Where things moved: the old import paths still serve code written before, and both
job pages share one progress mixin."""

import pytest


@pytest.mark.parametrize(
    "old, new, names",
    [
        (
            "visualsearch.services.search",
            "visualsearch.search",
            ["Filters", "Hit", "NotIndexed", "hydrate", "similar_to_product", "search_by_images"],
        ),
        (
            "recommendations.services.blend",
            "recommendations.blending.blend",
            ["blend_similar", "recommend_for_user", "resolve_settings", "Recommendation"],
        ),
        (
            "recommendations.services.blend",
            "recommendations.blending.core",
            ["COMPONENTS", "REASONS", "BlendSettings", "combine", "diversify", "normalise"],
        ),
        (
            "recommendations.services.blend_eval",
            "recommendations.offline.blend_evaluation",
            ["evaluate_blend", "prepare_blend_evaluation", "BlendEvalData"],
        ),
        (
            "recommendations.services.simulation",
            "recommendations.offline.simulation",
            ["simulate_shoppers", "load_ground_truth", "session_prefix", "World"],
        ),
    ],
)
def test_old_import_paths_re_export_the_moved_names(old, new, names):
    from importlib import import_module

    before, after = import_module(old), import_module(new)
    for name in names:
        assert getattr(before, name) is getattr(after, name)


def test_both_job_pages_share_one_progress_mixin():
    from lookalike.jobs.admin import JobProgressMixin
    from recommendations.admin import RecommenderModelAdmin
    from visualsearch.admin import IndexJobAdmin

    assert issubclass(IndexJobAdmin, JobProgressMixin)
    assert issubclass(RecommenderModelAdmin, JobProgressMixin)
