"""Serializers of the recommendations API: validated query parameters in, products out.

Parameters follow the visual-search API's rules (:mod:`visualsearch.api.serializers`): parsed
exactly as the OpenAPI schema documents them. The limits are settings, read whenever a
serializer is made, so the schema documents the limits the API applies.
"""

import re

from django.db import DatabaseError, transaction
from django.utils.translation import gettext, pgettext
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from rest_framework import serializers

from visualsearch.api.fields import StrictIntegerField
from visualsearch.api.serializers import (
    ErrorSerializer,
    ParamsSerializer,
    ProductCardSerializer,
    SimilarParamsSerializer,
    product_card,
)

from ..conf import app_settings
from ..models import BlendProfile
from ..services.profiles import UnknownProfile, get_profile

__all__ = [
    "ErrorSerializer",
    "PersonalisedSimilarParamsSerializer",
    "ProfileField",
    "RecommendationParamsSerializer",
    "RecommendationsSerializer",
    "RecommendedProductSerializer",
]


#: What a profile's name can be (``BlendProfile.name`` is a slug).
PROFILE_NAME = r"^[-a-zA-Z0-9_]+$"


def profile_names():
    return list(BlendProfile.objects.order_by("name").values_list("name", flat=True))


class ProfileField(serializers.CharField):
    """A blend profile's name, or empty for the default profile; validates to the
    ``BlendProfile`` (``None`` for the default when no profile exists at all), so the view
    blends with the row that was validated. An unknown name is a 400 that lists the names
    there are; the schema lists them too (:class:`ProfileFieldExtension`).
    """

    def __init__(self, **kwargs):
        super().__init__(allow_blank=True, **kwargs)

    def run_validation(self, data=serializers.empty):
        if data == "":
            return self.to_internal_value(data)  # the default profile, not ""
        return super().run_validation(data)

    def to_internal_value(self, data):
        name = super().to_internal_value(data)
        try:
            if name and not re.fullmatch(PROFILE_NAME, name):
                # No profile has such a name; asking the database would fail on a NUL byte.
                raise UnknownProfile(name, profile_names())
            return get_profile(name or None)
        except UnknownProfile as exc:
            available = ", ".join(exc.available) or pgettext("no blend profiles", "none")
            message = gettext("Unknown blend profile “%(name)s”; available profiles: %(names)s.")
            # The name as sent, cut short: a client's 10,000-character name is not echoed.
            name = exc.name if len(exc.name) <= 60 else exc.name[:59] + "…"
            raise serializers.ValidationError(
                message % {"name": name, "names": available}
            ) from None


class ProfileFieldExtension(OpenApiSerializerFieldExtension):
    """Documents ``profile`` as the names of the profiles there are when the schema is made
    (and empty, for the default), so that a client sees which values are accepted.

    A schema built without the shop's database (``check --deploy``, an offline build)
    documents the form of a name instead.
    """

    target_class = ProfileField

    def map_serializer_field(self, auto_schema, direction):
        try:
            with transaction.atomic():  # a failed query must not break a caller's transaction
                names = profile_names()
        except DatabaseError:
            return {"type": "string", "pattern": f"{PROFILE_NAME}|^$"}
        return {"type": "string", "enum": [*names, ""]}


class RecommendationParamsSerializer(ParamsSerializer):
    """``k`` and ``profile`` of ``GET /api/recommendations/``."""

    def get_fields(self):
        fields = super().get_fields()
        limit = app_settings.API_MAX_K
        fields["k"] = StrictIntegerField(
            default=app_settings.WIDGET_SIZE,
            min_value=1,
            max_value=limit,
            help_text=gettext("Number of products, 1 to %(limit)d.") % {"limit": limit},
        )
        fields["profile"] = ProfileField(
            required=False,
            help_text=_("Name of a blend profile; the default profile when left out or empty."),
        )
        return fields

    def validate(self, attrs):
        if "profile" not in attrs:
            attrs["profile"] = get_profile(None)
        return attrs


class PersonalisedSimilarParamsSerializer(SimilarParamsSerializer):
    """Query parameters of the personalised ``GET /api/products/{id}/similar/``: visual
    search's ``k`` and filters, and ``profile``, whose presence (empty: the default
    profile) asks for the blend. The filters hold in both modes.

    One ``k`` limit for both modes, the lower of the two APIs', so that the schema can
    state it: a parameter's range cannot depend on another parameter there.
    """

    def max_k(self):
        return min(super().max_k(), app_settings.API_MAX_K)

    def get_fields(self):
        fields = super().get_fields()
        fields["profile"] = ProfileField(
            required=False,
            help_text=_(
                "Name of a blend profile (empty: the default profile). With it the visual "
                "neighbours are blended with the other sources and personalised for the "
                "shopper, each result with its reason."
            ),
        )
        return fields


class RecommendedProductSerializer(ProductCardSerializer):
    """A recommended product: its blend score, why it is shown, and each component's share
    of the score."""

    # The instance is a recommendations.blending.blend.Recommendation.

    score = serializers.FloatField(help_text=_("Blend score in [0, 1], higher is better."))
    reason = serializers.CharField(help_text=_('Why it is shown, e.g. "Looks similar".'))
    components = serializers.DictField(
        child=serializers.FloatField(),
        help_text=_(
            "Weighted normalised score of each component (visual, collaborative, "
            "affinity, popularity, recency, covisitation); they sum to the score."
        ),
    )

    def to_representation(self, instance):
        card = product_card(instance.product, self.context.get("request"))
        card["score"] = round(instance.score, 6)
        card["reason"] = instance.reason
        card["components"] = {name: round(v, 6) for name, v in instance.components.items()}
        return card


class RecommendationsSerializer(serializers.Serializer):
    profile = serializers.CharField(help_text=_("The blend profile used."))
    results = RecommendedProductSerializer(many=True)
