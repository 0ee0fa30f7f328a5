"""Serializers of the recommendations API: validated query parameters in, products out."""

from django.utils.translation import gettext, pgettext
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from visualsearch.api.serializers import ProductCardSerializer, product_card

from ..conf import app_settings
from ..services.profiles import UnknownProfile, get_profile


class RecommendationParamsSerializer(serializers.Serializer):
    """``k`` and ``profile``, shared by both endpoints.

    ``validated_data["profile"]`` is the ``BlendProfile`` (``None`` for the default when
    no profile exists at all), so the view blends with the row that was validated.
    """

    k = serializers.IntegerField(
        required=False,
        min_value=1,
        help_text=_("Number of products (1 to RECOMMENDATIONS_API_MAX_K, 50 by default)."),
    )
    profile = serializers.SlugField(
        required=False,
        allow_blank=True,
        help_text=_("Name of a blend profile; the default profile when left out."),
    )

    def validate_k(self, value):
        limit = app_settings.API_MAX_K
        if value > limit:
            # DRF's own (translated) message of a max_value, read from settings per request.
            self.fields["k"].fail("max_value", max_value=limit)
        return value

    def validate(self, attrs):
        attrs.setdefault("k", app_settings.WIDGET_SIZE)
        try:
            attrs["profile"] = get_profile(attrs.get("profile") or None)
        except UnknownProfile as exc:
            available = ", ".join(exc.available) or pgettext("no blend profiles", "none")
            message = gettext("Unknown blend profile %(name)r; available profiles: %(names)s.")
            raise serializers.ValidationError(
                {"profile": [message % {"name": exc.name, "names": available}]}
            ) from None
        return attrs


class RecommendedProductSerializer(ProductCardSerializer):
    """A product card; the instance is a :class:`~recommendations.services.blend.Recommendation`."""

    score = serializers.FloatField(help_text=_("Blend score in [0, 1], higher is better."))
    reason = serializers.CharField(help_text=_('Why it is shown, e.g. "Looks similar".'))
    components = serializers.DictField(
        child=serializers.FloatField(),
        help_text=_(
            "Weighted normalised score of each component (visual, collaborative, "
            "affinity, popularity, recency); they sum to the score."
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


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
