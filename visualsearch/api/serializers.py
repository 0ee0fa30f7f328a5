"""Serializers of the visual-search API: validated query parameters in, result cards out."""

from django.db import models
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from lookalike.catalogue import get_adapter

from ..services.search import Filters
from ..uploads import InvalidUpload, read_photo

MAX_K = 100


class SearchParamsSerializer(serializers.Serializer):
    """Result count and filters, shared by both endpoints.

    Subclasses add their own parameters (a personalisation ``profile``, say) and extend
    :meth:`get_filters` or read ``validated_data`` in the view.
    """

    k = serializers.IntegerField(
        default=12, min_value=1, max_value=MAX_K, help_text=_("Number of results (1 to 100).")
    )
    category = serializers.CharField(
        required=False, allow_null=True, help_text=_("Only products of this category (its id).")
    )
    min_price = serializers.DecimalField(
        max_digits=10, decimal_places=2, min_value=0, required=False, allow_null=True
    )
    max_price = serializers.DecimalField(
        max_digits=10, decimal_places=2, min_value=0, required=False, allow_null=True
    )
    in_stock = serializers.BooleanField(default=False, help_text=_("Only products in stock."))

    def get_fields(self):
        fields = super().get_fields()
        if _integer_key(get_adapter().get_category_queryset()):
            # Integer category keys are documented (and validated) as integers.
            fields["category"] = serializers.IntegerField(
                required=False,
                allow_null=True,
                min_value=1,
                max_value=2**63 - 1,
                help_text=fields["category"].help_text,
            )
        return fields

    def validate_category(self, value):
        if value is None:
            return None
        adapter = get_adapter()
        try:
            return adapter.parse_category_key(value)
        except ValueError:
            # The adapter's message is for developers; the client gets a translated one.
            if adapter.get_category_queryset() is None:
                message = gettext("This shop has no categories.")
            else:
                message = gettext("%(value)r is not a category id.") % {"value": value}
            raise serializers.ValidationError(message) from None

    def validate(self, attrs):
        low, high = attrs.get("min_price"), attrs.get("max_price")
        if low is not None and high is not None and low > high:
            raise serializers.ValidationError(
                {"min_price": _("The minimum price is above the maximum price.")}
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
        help_text=_("The photo: JPEG, PNG, WebP, GIF (first frame), BMP or TIFF."),
        error_messages={"empty": _("The file is empty; please choose a photo.")},
    )
    box = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text=_(
            "Optional area to search with, 'x0,y0,x1,y1' in pixels of the upright photo "
            "(after EXIF rotation), right and bottom exclusive."
        ),
    )

    def validate(self, attrs):
        attrs = super().validate(attrs)
        try:
            attrs["photo"] = read_photo(attrs["image"], attrs.get("box"))
        except InvalidUpload as exc:
            raise serializers.ValidationError({exc.field: [exc.message]}, code=exc.code) from exc
        return attrs


def _integer_key(queryset):
    return queryset is not None and isinstance(queryset.model._meta.pk, models.IntegerField)


def product_card(product, request=None):
    """The API's card for a product: the fields every result list shares, from the
    catalogue adapter's :class:`~lookalike.catalogue.ProductCard`; the recommendations API
    adds its own fields to the same card."""
    card = get_adapter().get_card(product)

    def absolute(url):
        return request.build_absolute_uri(url) if request is not None and url else url

    return {
        "id": card.pk,
        "title": card.title,
        "price": None
        if card.price is None
        else serializers.DecimalField(max_digits=12, decimal_places=2).to_representation(
            card.price
        ),
        "currency": card.currency,
        "category": card.category,
        "in_stock": card.in_stock,
        "image_url": absolute(card.image_url),
        "url": absolute(card.url),
    }


class ProductCardSerializer(serializers.Serializer):
    """Schema of :func:`product_card`; subclasses add their own fields. ``id`` is an integer
    or a UUID, as the product model's key."""

    id = serializers.CharField()
    title = serializers.CharField()
    price = serializers.DecimalField(max_digits=12, decimal_places=2, allow_null=True)
    currency = serializers.CharField(allow_null=True)
    category = serializers.CharField(allow_null=True)
    in_stock = serializers.BooleanField()
    image_url = serializers.URLField(allow_null=True)
    url = serializers.URLField()

    def get_fields(self):
        fields = super().get_fields()
        pk = get_adapter().get_product_model()._meta.pk
        fields["id"] = (
            serializers.IntegerField()
            if isinstance(pk, models.IntegerField)
            else serializers.UUIDField()
            if isinstance(pk, models.UUIDField)
            else serializers.CharField()
        )
        return fields


class SearchResultSerializer(ProductCardSerializer):
    """One product card; the instance is a ``(product, score)`` pair from ``hydrate``."""

    score = serializers.FloatField(help_text=_("Cosine similarity, higher is more similar."))

    def to_representation(self, instance):
        product, score = instance
        card = product_card(product, self.context.get("request"))
        card["score"] = round(float(score), 6)
        return card


class SearchResultsSerializer(serializers.Serializer):
    results = SearchResultSerializer(many=True)


class VisualSearchErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
