"""Serializers of the visual-search API: validated query parameters in, result cards out."""

from rest_framework import serializers

from ..conf import app_settings
from ..services.search import Filters
from ..uploads import InvalidUpload, read_photo

MAX_K = 100


class SearchParamsSerializer(serializers.Serializer):
    """Result count and filters, shared by both endpoints.

    Subclasses add their own parameters (a personalisation ``profile``, say) and extend
    :meth:`get_filters` or read ``validated_data`` in the view.
    """

    k = serializers.IntegerField(
        default=12, min_value=1, max_value=MAX_K, help_text="Number of results (1 to 100)."
    )
    category = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, help_text="Only products of this category."
    )
    min_price = serializers.DecimalField(
        max_digits=10, decimal_places=2, min_value=0, required=False, allow_null=True
    )
    max_price = serializers.DecimalField(
        max_digits=10, decimal_places=2, min_value=0, required=False, allow_null=True
    )
    in_stock = serializers.BooleanField(default=False, help_text="Only products in stock.")

    def validate(self, attrs):
        low, high = attrs.get("min_price"), attrs.get("max_price")
        if low is not None and high is not None and low > high:
            raise serializers.ValidationError(
                {"min_price": "The minimum price is above the maximum price."}
            )
        return attrs

    def get_filters(self, exclude_ids=()):
        data = self.validated_data
        return Filters(
            category_id=data.get("category"),
            min_price=data.get("min_price"),
            max_price=data.get("max_price"),
            in_stock=data.get("in_stock", False),
            exclude_ids=tuple(exclude_ids),
        )


class SimilarParamsSerializer(SearchParamsSerializer):
    """Query parameters of ``GET /api/products/{id}/similar/``."""


class ImageSearchSerializer(SearchParamsSerializer):
    """Multipart body of ``POST /api/search/image/``."""

    image = serializers.FileField(
        help_text="The photo: JPEG, PNG, WebP, GIF (first frame), BMP or TIFF.",
        error_messages={"empty": "The file is empty; please choose a photo."},
    )
    box = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="Optional area to search with, 'x0,y0,x1,y1' in pixels of the upright photo "
        "(after EXIF rotation), right and bottom exclusive.",
    )

    def validate(self, attrs):
        attrs = super().validate(attrs)
        try:
            attrs["photo"] = read_photo(attrs["image"], attrs.get("box"))
        except InvalidUpload as exc:
            raise serializers.ValidationError({exc.field: [exc.message]}, code=exc.code) from exc
        return attrs


def product_card(product, request=None):
    """The API's card for a product: the fields every result list shares.

    Read through ``VISUALSEARCH_PRODUCT_FIELDS`` so that any shop's product model works;
    the recommendations API adds its own fields to the same card.
    """
    fields = app_settings.PRODUCT_FIELDS
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
    }


class ProductCardSerializer(serializers.Serializer):
    """Schema of :func:`product_card`; subclasses add their own fields."""

    id = serializers.IntegerField()
    title = serializers.CharField()
    price = serializers.DecimalField(max_digits=10, decimal_places=2)
    category = serializers.CharField(allow_null=True)
    in_stock = serializers.BooleanField()
    image_url = serializers.URLField(allow_null=True)
    url = serializers.URLField()


class SearchResultSerializer(ProductCardSerializer):
    """One product card; the instance is a ``(product, score)`` pair from ``hydrate``."""

    score = serializers.FloatField(help_text="Cosine similarity, higher is more similar.")

    def to_representation(self, instance):
        product, score = instance
        card = product_card(product, self.context.get("request"))
        card["score"] = round(float(score), 6)
        return card


class SearchResultsSerializer(serializers.Serializer):
    results = SearchResultSerializer(many=True)


class VisualSearchErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
