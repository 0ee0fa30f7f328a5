"""The widgets' blends: "Similar items" (:func:`blend_similar`) and "For you"
(:func:`recommend_for_user`), as the shop serves them.

Each resolves the profile (kept per process under a version stamp that publishing or
saving a profile bumps, :mod:`recommendations.caching`, so a newly published default is
served at once by every process), finds the shopper, gathers candidates from the
:class:`~.live.LiveSource`, scores and ranks them (:mod:`.candidates`) and returns
:class:`Recommendation` objects with their products. Both run with one BLAS thread
(:mod:`lookalike.blas`): their matrices are small, and a pool of BLAS threads per request
made them several times slower on a busy machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lookalike.blas import single_threaded

from ..caching import PROFILES
from ..conf import app_settings
from ..services.profiles import get_profile
from .candidates import gather_for_user, gather_similar, rank, score_candidates
from .core import BUILTIN_SETTINGS, COMPONENTS, REASONS, BlendSettings, reasons
from .live import LiveSource, live_shopper
from .segments import candidate_segments, cold_columns

__all__ = [
    "Recommendation",
    "blend_similar",
    "newest_recommendations",
    "recommend_for_user",
    "resolve_settings",
]


@dataclass(frozen=True)
class Recommendation:
    """One recommended product.

    Attributes
    ----------
    product : Model instance
        The product (``LOOKALIKE_PRODUCT_MODEL``).
    score : float
        Blend score in [0, 1].
    reason : str
        Shown under the product ("Looks similar", ...).
    components : dict
        ``{component: weighted normalised score}`` for every component; they sum to
        ``score``.
    """

    product: object
    score: float
    reason: str
    components: dict = field(default_factory=dict)


def resolve_settings(profile=None):
    """Turn a ``BlendProfile``, a profile name, a :class:`BlendSettings` or ``None`` (the
    default profile) into :class:`BlendSettings`.

    Raises
    ------
    recommendations.services.profiles.UnknownProfile
        For a name no profile has.
    """
    if isinstance(profile, BlendSettings):
        return profile
    if isinstance(profile, str | None):
        # By name or the default: the answer is the same until a profile changes.
        return PROFILES.get(profile or None, lambda: _settings_of(get_profile(profile)))
    return _settings_of(get_profile(profile))


def _settings_of(row):
    return BUILTIN_SETTINGS if row is None else BlendSettings.from_profile(row)


@single_threaded
def blend_similar(product, *, user=None, session_key=None, profile=None, k=12, filters=None):
    """Products like ``product``, personalised for the shopper: the "Similar items" strip.

    Parameters
    ----------
    product : Model instance or int
        The product being viewed (or its id).
    user : User, optional
        The signed-in shopper; anonymous users count as none.
    session_key : str, optional
        The shopper's session, which personalises an anonymous shopper after a few events.
    profile : BlendProfile, str or None
        The profile (or its name); ``None`` for the default profile.
    k : int
    filters : visualsearch.search.Filters, optional
        Only products in this category, price range or stock (the API's filters): every
        source's candidates are held to them, on top of the profile's rules.

    Returns
    -------
    list of Recommendation
        At most ``k``, best first; empty only when no product qualifies at all.

    Raises
    ------
    recommendations.services.profiles.UnknownProfile
        For an unknown profile name.
    """
    settings = resolve_settings(profile)
    product_id = getattr(product, "pk", product)
    shopper = live_shopper(user, session_key, settings)
    exclude = set(shopper.purchased)
    if settings.exclude_current:
        exclude.add(product_id)
    source = LiveSource(settings, filters)
    cands, anchor = gather_similar(
        source, product_id, shopper, exclude, app_settings.BLEND_CANDIDATES
    )
    return _finish(cands, source, settings, k, exclude, anchor, shopper, [product_id], False)


@single_threaded
def recommend_for_user(*, user=None, session_key=None, profile=None, k=12, exclude=()):
    """Products for the shopper: the "For you" strip.

    A signed-in user or an anonymous session with events gets products like their
    recent ones (visual and ALS item-item) and the ALS model's picks for them; a shopper
    with no events gets popular products, or the newest when nothing has events yet.

    Parameters and return value as :func:`blend_similar`, without ``product``; the
    profile's "exclude current" rule leaves out the shopper's recent products, and
    ``exclude`` (product keys) more: the product of the page the strip is on, which a
    shopper's first view has not made part of their history yet.
    """
    settings = resolve_settings(profile)
    shopper = live_shopper(user, session_key, settings)
    exclude = set(shopper.purchased).union(exclude)
    if settings.exclude_current:
        exclude.update(shopper.history)
    source = LiveSource(settings)
    cands, anchor = gather_for_user(source, shopper, exclude, app_settings.BLEND_CANDIDATES)
    return _finish(cands, source, settings, k, exclude, anchor, shopper, shopper.history, True)


def _finish(cands, source, settings, k, exclude, anchor, shopper, context, for_you):
    """Score, rank and explain the candidates (steps 2 to 4), each with its segment's
    weights (:mod:`.segments`: the new-shopper segment in "For you" only)."""
    scored = score_candidates(
        cands, source, exclude, app_settings.RECENCY_HALF_LIFE_DAYS, anchor=anchor
    )
    if scored is None:
        return []
    cold = cold_columns(source, scored, shopper, context)
    picked, scores, contributions = rank(
        scored.raw,
        settings,
        k,
        categories=scored.categories,
        embeddings=scored.embeddings,
        segments=candidate_segments(cold, shopper if for_you else None),
    )
    why = reasons(contributions[picked], [scored.origins[i] for i in picked], cold[picked])
    products = source.products([scored.ids[i] for i in picked])
    return [
        Recommendation(
            product=products[scored.ids[i]],
            score=float(scores[i]),
            reason=reason,
            components={c: float(contributions[i, j]) for j, c in enumerate(COMPONENTS)},
        )
        for i, reason in zip(picked, why, strict=True)
        if scored.ids[i] in products
    ]


def newest_recommendations(k, settings=BUILTIN_SETTINGS):
    """The newest eligible products, reason "New in": the last resort of the widgets."""
    source = LiveSource(settings)
    ids = source.newest(k, ())
    products = source.products(ids)
    return [
        Recommendation(products[pid], 0.0, REASONS["recency"], {}) for pid in ids if pid in products
    ]
