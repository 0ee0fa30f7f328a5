"""The visual-search API: similar products, and search by an uploaded photo.

Both endpoints validate their input with a serializer, call the same services as the pages
and answer with the same result cards.
"""

from django.http import Http404
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from lookalike.catalogue import get_adapter

from ..services import search
from .serializers import (
    ImageSearchSerializer,
    SearchResultsSerializer,
    SimilarParamsSerializer,
    VisualSearchErrorSerializer,
)


class NotIndexedError(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = _("This product's photo has not been indexed yet; try again later.")
    default_code = "not_indexed"


class UploadRateThrottle(ScopedRateThrottle):
    """``ScopedRateThrottle`` reading its rates on every request.

    DRF copies ``DEFAULT_THROTTLE_RATES`` into a class attribute at import, so changed
    settings (a deployment's override, a test's ``settings`` fixture) would be ignored.
    """

    def get_rate(self):
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)


def results_response(request, pairs):
    data = SearchResultsSerializer({"results": pairs}, context={"request": request}).data
    return Response(data)


class ProductViewSet(viewsets.GenericViewSet):
    """Products, seen from visual search; only the ``similar`` action is served here."""

    lookup_value_regex = r"[^/.]+"  # integer or UUID keys; the adapter parses them
    serializer_class = SearchResultsSerializer
    similar_params_class = SimilarParamsSerializer

    def get_queryset(self):
        adapter = get_adapter()
        return adapter.annotate(adapter.get_queryset())

    def get_object(self):
        try:
            self.kwargs[self.lookup_field] = get_adapter().parse_pk(self.kwargs[self.lookup_field])
        except ValueError:
            raise Http404(gettext("No such product.")) from None
        return super().get_object()

    def similar_hits(self, product, params):
        """The ranked hits for ``product``; the place to blend in other signals."""
        return search.similar_to_product(
            product.pk, k=params.validated_data["k"], filters=params.get_filters()
        )

    @extend_schema(
        summary=_("Products that look like this one"),
        description=_(
            "The ``k`` active products whose photos look most like this product's, "
            "best first, under optional filters."
        ),
        tags=["visual search"],
        parameters=[
            SimilarParamsSerializer,
        ],
        responses={
            200: SearchResultsSerializer,
            400: OpenApiResponse(OpenApiTypes.OBJECT, description=_("Invalid query parameters.")),
            404: OpenApiResponse(
                VisualSearchErrorSerializer, description=_("Unknown or inactive product.")
            ),
            409: OpenApiResponse(
                VisualSearchErrorSerializer, description=_("The product is not indexed yet.")
            ),
        },
    )
    @action(detail=True, methods=["get"])
    def similar(self, request, pk=None):
        product = self.get_object()
        params = self.similar_params_class(data=request.query_params)
        params.is_valid(raise_exception=True)
        try:
            hits = self.similar_hits(product, params)
        except search.NotIndexed as exc:
            raise NotIndexedError() from exc
        return results_response(request, search.hydrate(hits))


class ImageSearchView(APIView):
    """Find products that look like an uploaded photo, or a part of it."""

    parser_classes = [MultiPartParser, FormParser]
    throttle_classes = [UploadRateThrottle]
    throttle_scope = "image_search"

    @extend_schema(
        summary=_("Search by photo"),
        description=_(
            "Upload a photo (multipart field ``image``), optionally with a ``box`` to "
            "search with only part of it; answers the ``k`` most similar active products."
        ),
        tags=["visual search"],
        request={"multipart/form-data": ImageSearchSerializer},
        responses={
            200: SearchResultsSerializer,
            400: OpenApiResponse(
                OpenApiTypes.OBJECT,
                description=_("The photo or a parameter was refused; each field lists why."),
            ),
            429: OpenApiResponse(
                VisualSearchErrorSerializer, description=_("Too many searches; slow down.")
            ),
        },
    )
    def post(self, request):
        params = ImageSearchSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        photo = params.validated_data["photo"]
        [hits] = search.search_by_images(
            [photo.query], k=params.validated_data["k"], filters=params.get_filters()
        )
        return results_response(request, search.hydrate(hits))
