"""What a blend profile needs of the catalogue: the sources its weights use must exist (a
profile weighing visual similarity before any photo is indexed would serve nothing of it),
checked by :func:`~recommendations.services.profiles.publish_profile` and the admin."""

from ..models import RecommenderModel


def _has_visual_embeddings():
    from visualsearch.conf import app_settings as visual_settings
    from visualsearch.models import ProductEmbedding

    encoder = visual_settings.ENCODER
    return encoder, ProductEmbedding.objects.filter(encoder=encoder).exists()


def catalogue_problems(weights):
    """Why ``weights`` would not work on the catalogue as it is now (empty when fine).

    Visual similarity needs embeddings of the configured encoder
    (``VISUALSEARCH_ENCODER``); collaborative filtering, user affinity and co-visitation
    need an active trained model.
    """
    problems = []
    if weights.get("visual", 0) > 0:
        encoder, present = _has_visual_embeddings()
        if not present:
            problems.append(
                f"the visual weight is {weights['visual']:g} but no product has an embedding "
                f"for the active encoder {encoder!r}: index the catalogue first "
                "(the visual-search admin's reindex), or set the visual weight to 0."
            )
    als = {
        c: weights.get(c, 0)
        for c in ("collaborative", "affinity", "covisitation")
        if weights.get(c, 0) > 0
    }
    if als and not RecommenderModel.objects.filter(is_active=True).exists():
        named = " and ".join(f"the {c} weight is {w:g}" for c, w in als.items())
        problems.append(
            f"{named} but there is no trained recommender model: train one first "
            "(train_recommender), or set these weights to 0."
        )
    return problems
