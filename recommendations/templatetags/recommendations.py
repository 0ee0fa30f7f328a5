"""Template tags of the recommendation widgets.

``{% load recommendations %}``, then on a product page ``{% similar_items product %}``
and anywhere ``{% recommended_for_you %}``. Both take ``profile="name"`` (a blend profile
other than the default), ``k=`` (strip length, ``RECOMMENDATIONS_WIDGET_SIZE`` by default)
and ``title=`` ("For you" is titled "Popular now", "New in" or "Popular and new" when
nothing in it is personal, unless ``title=`` says otherwise); ``{% recommended_for_you
new_in=False %}`` on a page that lists new products itself leaves out a strip of new
products only. Each product links with
``?from=similar-widget`` or ``?from=for-you`` so that the shop's product view records the
click as a ``similar_click`` event with that source.

While an experiment runs (:mod:`recommendations.experiments`), a strip that names no
``profile=`` is blended with the shopper's arm's profile, recorded as impressions, and its
links also carry ``&rec=<recommendation id>`` (``recommendation_id`` in the card's context).

A widget never breaks its page: an unknown profile falls back to the default profile, and
a failure of the blend falls back to the newest products; both are logged.
"""

import logging

from django import template
from django.utils.translation import gettext_lazy as _

from lookalike.cards import Card, render_cards
from lookalike.catalogue import get_adapter
from lookalike.conf import app_settings as lookalike_settings

from ..blending import blend
from ..blending.core import REASONS
from ..conf import app_settings
from ..events import request_shopper
from ..experiments.widgets import trial_for
from ..services.profiles import UnknownProfile

logger = logging.getLogger(__name__)
register = template.Library()

SIMILAR_SOURCE = "similar-widget"
FOR_YOU_SOURCE = "for-you"


def _shopper(context):
    request = context.get("request")
    if request is None:
        return None, None
    return request_shopper(request)


def _strip_length(k):
    """The number of products a strip shows: ``k`` as the template gave it, a number or its
    text (``k="8"``, a variable); ``RECOMMENDATIONS_WIDGET_SIZE`` when not given. Anything
    else, or more than ``RECOMMENDATIONS_API_MAX_K``, is logged and the widget size is used:
    a typo in a template must not take its page down. ``k=0`` shows nothing."""
    size = app_settings.WIDGET_SIZE
    if k is None or k == "":
        return size
    try:
        length = int(str(k).strip())
    except ValueError:
        length = -1
    if not 0 <= length <= max(app_settings.API_MAX_K, size):
        logger.warning("A widget's k=%r is not a number of products; it shows %s.", k, size)
        return size
    return length


def _blend(function, profile, k, **kwargs):
    profile = profile or None
    if not k:
        return [], profile or "default"
    for attempt in (profile, None) if profile else (None,):
        try:
            return function(profile=attempt, k=k, **kwargs), attempt or "default"
        except UnknownProfile:
            logger.warning("Blend profile %r does not exist; the widget uses the default.", attempt)
        except Exception:
            logger.exception("Recommendations failed; the widget shows the newest products.")
            break
    return blend.newest_recommendations(k), "fallback"


def _strip(recommendations, *, widget, title, source, profile_name):
    return {
        "recommendations": recommendations,
        "widget": widget,
        "title": title,
        "source": source,
        "profile_name": profile_name,
        "card_template": lookalike_settings.CARD_TEMPLATE,
    }


#: Titles of a "For you" strip with nothing personal in it, by the reasons it shows: a
#: new shopper's strip of popular and new products is not presented as picked for them.
NEW_ONLY = frozenset({"recency"})
GENERAL_TITLES = {
    frozenset({"popularity"}): _("Popular now"),
    NEW_ONLY: _("New in"),
    frozenset({"popularity", "recency"}): _("Popular and new"),
}


def _components(recommendations):
    """The blend components the strip's products are shown for, by their reasons."""
    components = {str(text): name for name, text in REASONS.items()}
    return frozenset(components.get(str(rec.reason)) for rec in recommendations)


def _for_you_title(recommendations):
    """The strip's title: "Recommended for you", unless every product is there only for
    being popular or new (no history, no model yet, or nothing found for this shopper)."""
    return GENERAL_TITLES.get(_components(recommendations), _("Recommended for you"))


def _stylesheet(request):
    """``LOOKALIKE_WIDGET_STYLESHEET`` for the first strip of a page, ``None`` for the
    others: one link a page, however many strips it shows."""
    path = lookalike_settings.WIDGET_STYLESHEET
    return path if path and _first(request, "_lookalike_stylesheet_linked") else None


def _first(request, flag):
    """Whether this is the page's first strip to ask about ``flag`` (always, without a
    request): what a page needs once is linked by its first strip."""
    if request is None:
        return True
    if getattr(request, flag, False):
        return False
    setattr(request, flag, True)
    return True


def _heading_id(request, widget):
    """The id of the strip's heading, unique in its page: ``for-you-title``, then
    ``for-you-title-2`` for a second "For you" strip (another profile, say)."""
    if request is None:
        return f"{widget}-title"
    shown = request.__dict__.setdefault("_lookalike_strips", {})
    shown[widget] = shown.get(widget, 0) + 1
    return f"{widget}-title" if shown[widget] == 1 else f"{widget}-title-{shown[widget]}"


def _with_cards(strip, request):
    """The strip with its cards rendered (:mod:`lookalike.cards` reuses them), the id of its
    heading and its stylesheet, if the page does not link it yet."""
    # An empty strip renders nothing, its link neither: the next strip links the sheet.
    strip["stylesheet"] = _stylesheet(request) if strip["recommendations"] else None
    strip["script"] = bool(strip["recommendations"]) and _first(request, "_lookalike_script_linked")
    strip["heading_id"] = _heading_id(request, strip["widget"]) if strip["recommendations"] else ""
    if request is not None:
        shown = request.__dict__.setdefault("_lookalike_shown", set())
        shown.update(rec.product.pk for rec in strip["recommendations"])
    strip["cards"] = render_cards(
        [Card(rec.product, reason=rec.reason) for rec in strip["recommendations"]],
        strip["card_template"],
        strip["source"],
        strip["recommendation_id"],
        request=request,
    )
    return strip


def _shown(product):
    """Whether ``product`` is a product (an instance passes), or the key of one the shop
    shows: a key that names none is a template's mistake, not a reason to show others."""
    if hasattr(product, "pk"):
        return True
    adapter = get_adapter()
    try:
        return adapter.get_queryset().filter(pk=adapter.parse_pk(product)).exists()
    except (ValueError, TypeError):
        return False


@register.inclusion_tag("recommendations/strip.html", takes_context=True)
def similar_items(context, product, profile=None, k=None, title=None):
    """A "Similar items" strip for ``product``, personalised for the current shopper; none
    (logged) when ``product`` is empty: a misspelt variable, not a reason to show others."""
    if product is None or product == "" or not _shown(product):
        logger.warning("similar_items was given no product shown (%r); it shows nothing.", product)
        return {"recommendations": [], "widget": "similar-items"}
    user, session_key = _shopper(context)
    trial = trial_for(context.get("request"), profile)  # None outside an experiment
    recommendations, profile_name = _blend(
        blend.blend_similar,
        trial.profile_name if trial else profile,
        _strip_length(k),
        product=product,
        user=user,
        session_key=session_key,
    )
    strip = _strip(
        recommendations,
        widget="similar-items",
        title=title or _("Similar items"),
        source=SIMILAR_SOURCE,
        profile_name=profile_name,
    )
    strip["recommendation_id"] = (
        trial.record(recommendations, "similar-items", profile_name) if trial else ""
    )
    return _with_cards(strip, context.get("request"))


@register.inclusion_tag("recommendations/strip.html", takes_context=True)
def recommended_for_you(context, profile=None, k=None, title=None, exclude=None, new_in=True):
    """A "For you" strip for the current shopper (or popular and new products);
    ``exclude``, a product (or its key), is left out: the product of the page; so are the
    products an earlier strip of the page shows ("Similar items" above it). With
    ``new_in=False`` a strip of new products only (a cold shop) is not shown: the page
    lists new products itself (a home page's "New in")."""
    user, session_key = _shopper(context)
    request = context.get("request")
    excluded = set(getattr(request, "_lookalike_shown", ()))
    if exclude not in (None, ""):
        excluded.add(getattr(exclude, "pk", exclude))
    trial = trial_for(context.get("request"), profile)  # None outside an experiment
    recommendations, profile_name = _blend(
        blend.recommend_for_user,
        trial.profile_name if trial else profile,
        _strip_length(k),
        user=user,
        session_key=session_key,
        exclude=tuple(excluded),
    )
    if not new_in and _components(recommendations) == NEW_ONLY:
        recommendations = []
    strip = _strip(
        recommendations,
        widget="for-you",
        title=title or _for_you_title(recommendations),
        source=FOR_YOU_SOURCE,
        profile_name=profile_name,
    )
    strip["recommendation_id"] = (
        trial.record(recommendations, "for-you", profile_name) if trial else ""
    )
    return _with_cards(strip, context.get("request"))
