"""Serializers of the recommendations API: validated query parameters in, products out."""

from rest_framework import serializers

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
        help_text="Number of products (1 to RECOMMENDATIONS_API_MAX_K, 50 by default).",
    )
    profile = serializers.SlugField(
        required=False,
        allow_blank=True,
        help_text="Name of a blend profile; the default profile when left out.",
    )

    def validate_k(self, value):
        limit = app_settings.API_MAX_K
        if value > limit:
            raise serializers.ValidationError(
                f"Ensure this value is less than or equal to {limit}."
            )
        return value

    def validate(self, attrs):
        attrs.setdefault("k", app_settings.WIDGET_SIZE)
        try:
            attrs["profile"] = get_profile(attrs.get("profile") or None)
        except UnknownProfile as exc:
            raise serializers.ValidationError({"profile": [str(exc)]}) from None
        return attrs


class RecommendedProductSerializer(serializers.Serializer):
    """A product card; the instance is a :class:`~recommendations.services.blend.Recommendation`."""

    id = serializers.IntegerField()
    title = serializers.CharField()
    price = serializers.DecimalField(max_digits=10, decimal_places=2)
    category = serializers.CharField(allow_null=True)
    in_stock = serializers.BooleanField()
    image_url = serializers.URLField(allow_null=True)
    url = serializers.URLField()
    score = serializers.FloatField(help_text="Blend score in [0, 1], higher is better.")
    reason = serializers.CharField(help_text='Why it is shown, e.g. "Looks similar".')
    components = serializers.DictField(
        child=serializers.FloatField(),
        help_text="Weighted normalised score of each component (visual, collaborative, "
        "affinity, popularity, recency); they sum to the score.",
    )

    def to_representation(self, instance):
        product = instance.product
        fields = app_settings.PRODUCT_FIELDS
        request = self.context.get("request")
        image = getattr(product, fields["image"], None)
        category = getattr(product, fields["category"], None)

        def absolute(url):
            return request.build_absolute_uri(url) if request is not None else url

        return {
            "id": product.pk,
            "title": getattr(product, fields["title"]),
            "price": serializers.DecimalField(max_digits=10, decimal_places=2).to_representation(
                getattr(product, fields["price"])
            ),
            "category": str(category) if category is not None else None,
            "in_stock": (getattr(product, fields["stock"]) or 0) > 0,
            "image_url": absolute(image.url) if image else None,
            "url": absolute(product.get_absolute_url()),
            "score": round(instance.score, 6),
            "reason": instance.reason,
            "components": {name: round(v, 6) for name, v in instance.components.items()},
        }


class RecommendationsSerializer(serializers.Serializer):
    profile = serializers.CharField(help_text="The blend profile used.")
    results = RecommendedProductSerializer(many=True)


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
