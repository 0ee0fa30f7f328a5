"""Serializers of the visual-search API: validated query parameters in, result cards out.

The parameters are parsed exactly as the OpenAPI schema documents them (checked by
Schemathesis in ``tests/test_api_schema.py``): an integer is digits, a boolean is ``true``
or ``false``, a price is a plain decimal, and an empty value is refused unless the
parameter is nullable. DRF's fields are more lenient (``k=5.0``, ``in_stock=yes``,
``min_price=1e2``, ``k=`` taken as left out), which would make the schema say less than
the API accepts.
"""

from django.db import models
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiSerializerExtension
from rest_framework import serializers

from lookalike.catalogue import get_adapter

from ..search import Filters
from ..uploads import BOX_TOO_LONG, MAX_BOX_LENGTH, TURN_DEGREES, InvalidUpload, read_photo
from .fields import BoxField, PhotoField, PriceField, StrictBooleanField, StrictIntegerField

MAX_K = 100


class ParamsSerializer(serializers.Serializer):
    """Parameters from a query string or a form.

    DRF takes an empty value (``k=``) as a parameter left out, or as null; the schema says
    ``k`` is an integer, and neither a query string nor a form can say null, so an empty
    value is refused here unless the field may be blank. A filter is left out to not filter.
    DRF also reads the last of a parameter given twice (``k=5&k=x``), which the schema does
    not allow for: that is refused too.
    """

    def to_internal_value(self, data):
        errors = {}
        getlist = getattr(data, "getlist", None)
        for name, field in self.fields.items():
            if getlist is not None and len(getlist(name)) > 1:
                errors[name] = [gettext("Give this parameter once.")]
                continue
            if (
                not field.read_only
                and data.get(name) == ""
                and not getattr(field, "allow_blank", False)
            ):
                messages = field.error_messages
                message = messages.get("blank") or messages.get("invalid") or messages["required"]
                errors[name] = [str(message).format(input="")]
        if errors:
            raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


class SearchParamsSerializer(ParamsSerializer):
    """Result count and filters, shared by both endpoints.

    A price range whose minimum is above its maximum is empty, not an error: the schema
    cannot relate two parameters, and a filter that nothing passes answers no products.

    Subclasses add their own parameters (a personalisation ``profile``, say) and extend
    :meth:`get_filters` or read ``validated_data`` in the view.
    """

    k = StrictIntegerField(default=12, min_value=1, max_value=MAX_K)
    category = serializers.CharField(
        required=False, help_text=_("Only products of this category (its id).")
    )
    min_price = PriceField(required=False, help_text=_("Only products at this price or above."))
    max_price = PriceField(
        required=False,
        help_text=_("Only products at this price or below; below min_price, none match."),
    )
    in_stock = StrictBooleanField(default=False, help_text=_("Only products in stock."))

    def max_k(self):
        """The largest ``k``; a subclass that blends other sources may allow fewer."""
        return MAX_K

    def get_fields(self):
        fields = super().get_fields()
        limit = self.max_k()
        fields["k"] = StrictIntegerField(
            default=min(12, limit),
            min_value=1,
            max_value=limit,
            help_text=gettext("Number of results, 1 to %(limit)d.") % {"limit": limit},
        )
        if _integer_key(get_adapter().get_category_queryset()):
            # Integer category keys are documented (and validated) as integers.
            fields["category"] = StrictIntegerField(
                required=False,
                min_value=1,
                max_value=2**63 - 1,
                help_text=fields["category"].help_text,
            )
        return fields

    def validate_category(self, value):
        adapter = get_adapter()
        try:
            return adapter.parse_category_key(value)
        except ValueError:
            # The adapter's message is for developers; the client gets a translated one.
            if adapter.get_category_queryset() is None:
                message = gettext("This shop has no categories.")
            else:
                message = gettext("“%(value)s” is not a category id.") % {"value": value}
            raise serializers.ValidationError(message) from None

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

    image = PhotoField(
        help_text=_("The photo: JPEG, PNG, WebP, GIF (first frame), BMP or TIFF."),
        error_messages={"empty": _("The file is empty; please choose a photo.")},
    )
    box = BoxField(
        required=False,
        allow_blank=True,
        max_length=MAX_BOX_LENGTH,
        error_messages={"max_length": BOX_TOO_LONG},
        help_text=_(
            "Optional area to search with, 'x0,y0,x1,y1' in pixels of the upright photo "
            "(after EXIF rotation and ``turn``), right and bottom exclusive."
        ),
    )
    turn = serializers.ChoiceField(
        choices=TURN_DEGREES,
        required=False,
        allow_blank=True,  # as the page sends it when there is no turn: none
        default=0,
        help_text=_(
            "Degrees clockwise to turn the photo by before searching, for a photo saved "
            "sideways without an EXIF orientation."
        ),
    )

    def validate(self, attrs):
        attrs = super().validate(attrs)
        try:
            attrs["photo"] = read_photo(attrs["image"], attrs.get("box"), attrs.get("turn", 0))
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
    """One product that looks like the query, with its score."""

    score = serializers.FloatField(
        help_text=_(
            "Similarity to the query, higher is more similar: the cosine of the two vectors; "
            "for a photo, in the re-ranking space, lowered for products of a category the "
            "photo is unlikely to show."
        )
    )

    def to_representation(self, instance):
        product, score = instance
        card = product_card(product, self.context.get("request"))
        card["score"] = round(float(score), 6)
        return card


class SearchResultsSerializer(serializers.Serializer):
    """The products that look most like the query, best first."""

    results = SearchResultSerializer(many=True)


class RegionResultsSerializer(serializers.Serializer):
    """A product found in the photo: its box, in pixels of the whole upright photo, and the
    products that look most like it."""

    box = serializers.ListField(
        child=serializers.IntegerField(min_value=0),
        min_length=4,
        max_length=4,
        help_text=_(
            "Where the product is, [x0, y0, x1, y1] in pixels of the upright photo (after "
            "EXIF rotation), right and bottom exclusive: send it back as ``box`` to search "
            "with this product alone."
        ),
    )
    results = SearchResultSerializer(many=True)

    def to_representation(self, instance):
        box, pairs = instance
        return {
            "box": [int(v) for v in box],
            "results": SearchResultSerializer(pairs, many=True, context=self.context).data,
        }


class PhotoSearchResultsSerializer(serializers.Serializer):
    """The answer of photo search: the fused results and the products found in the photo."""

    results = SearchResultSerializer(many=True)
    regions = RegionResultsSerializer(
        many=True,
        help_text=_(
            "The products found in the photo, each with its own results, when the photo was "
            "searched in parts (on a busy background, or with several products); empty when "
            "it was searched whole or with a box. ``results`` fuses them."
        ),
    )
    close_match = serializers.BooleanField(
        allow_null=True,
        help_text=_(
            "false when nothing in the shop looks much like the photo (the results are only "
            "the nearest there are: the photo may show no product, or one the shop does not "
            "sell); null when that cannot be told."
        ),
    )


class ErrorSerializer(serializers.Serializer):
    """Every error of the API that is not about one parameter: DRF's ``{"detail": ...}``
    (404, 405, 409, 415, 429, and a 400 for a body that cannot be parsed)."""

    detail = serializers.CharField()


class NotIndexedSerializer(ErrorSerializer):
    """A 409 for a product without a vector, with a code that says whether asking again
    later can help."""

    code = serializers.ChoiceField(
        choices=[
            ("not_indexed", _("no reindex has reached the product yet: ask again later")),
            ("no_image", _("the product has no photo")),
            ("image_failed", _("its photo could not be analysed")),
        ],
        help_text=_("Whether asking again later can help."),
    )


class ValidationErrorSerializer(serializers.Serializer):
    """A 400 about the parameters: ``{parameter: [reasons]}`` (``non_field_errors`` for
    reasons about several), or ``{"detail": ...}`` when the body could not be read at all.
    Only documented: DRF writes these itself (:class:`ValidationErrorExtension`)."""


class ClosedSearchResultsExtension(OpenApiSerializerExtension):
    """``SearchResults`` with ``additionalProperties: false``.

    The personalised ``similar/`` answers either this or ``Recommendations`` (``oneOf``);
    a ``Recommendations`` body (``profile`` and ``results``) would also pass an open
    ``SearchResults``, and ``oneOf`` needs exactly one shape to match.
    """

    target_class = SearchResultsSerializer

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        return {**schema, "additionalProperties": False}


class ValidationErrorExtension(OpenApiSerializerExtension):
    target_class = ValidationErrorSerializer

    def map_serializer(self, auto_schema, direction):
        return {
            "type": "object",
            "description": gettext(
                "Each refused parameter with the reasons it was refused; non_field_errors "
                "for reasons about several, detail when the request could not be read."
            ),
            "properties": {"detail": {"type": "string"}},
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        }
