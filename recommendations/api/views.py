"""The recommendations API: "For you" and personalised "Similar items" as JSON.

Both answer for the shopper of the request: the signed-in user, or the anonymous session
(whose events personalise it after a few clicks). Parameters are validated by
:class:`~.serializers.RecommendationParamsSerializer` and
:class:`~.serializers.PersonalisedSimilarParamsSerializer`; a bad ``k`` or an unknown
``profile`` is a 400 naming the parameter.
"""

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema, extend_schema_view
from rest_framework.response import Response
from rest_framework.views import APIView

from visualsearch.api.documented import (
    BAD_PARAMETERS,
    DATABASE_UNAVAILABLE,
    NOT_INDEXED,
    UNKNOWN_PRODUCT,
    ClientDescription,
)
from visualsearch.api.serializers import SearchResultsSerializer
from visualsearch.api.views import ProductViewSet

from ..blending.blend import blend_similar, recommend_for_user
from ..blending.core import BUILTIN_SETTINGS
from ..events import request_shopper
from .serializers import (
    PersonalisedSimilarParamsSerializer,
    RecommendationParamsSerializer,
    RecommendationsSerializer,
)

FOR_YOU = _(
    'Products recommended to the current shopper ("For you"): the signed-in user, or the '
    "session's shopper; each with the reason it is shown."
)
PERSONALISED_SIMILAR = _(
    "Visual neighbours under the filters; with ``profile``, the blended and "
    'personalised "Similar items" of that blend profile for the current shopper, '
    "under the same filters, each with its reason."
)


def _shopper(request):
    return request_shopper(request)


def _response(request, recommendations, profile):
    data = RecommendationsSerializer(
        {
            "profile": profile.name if profile is not None else BUILTIN_SETTINGS.name,
            "results": recommendations,
        },
        context={"request": request},
    ).data
    return Response(data)


def personalised_similar_response(request, product, params=None):
    """The personalised "Similar items" of ``product`` for the request's shopper, under the
    request's filters (category, price, stock).

    For an API view that serves similar products and wants to honour ``?profile=`` (the
    visual-search ``GET /api/products/{id}/similar/``). ``params`` is a validated
    :class:`~.serializers.PersonalisedSimilarParamsSerializer`; without it the query string
    is validated here (raising DRF's ``ValidationError``, a 400).
    """
    if params is None:
        params = PersonalisedSimilarParamsSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
    user, session_key = _shopper(request)
    profile = params.validated_data.get("profile")
    recommendations = blend_similar(
        product,
        user=user,
        session_key=session_key,
        profile=profile,
        k=params.validated_data["k"],
        filters=params.get_filters(),
    )
    return _response(request, recommendations, profile)


class RecommendationsView(ClientDescription, APIView):
    """Products recommended to the current shopper ("For you")."""

    client_description = FOR_YOU

    @extend_schema(
        summary=_("Recommendations for the current shopper"),
        description=FOR_YOU,
        parameters=[RecommendationParamsSerializer],
        responses={
            200: RecommendationsSerializer,
            400: BAD_PARAMETERS,
            503: DATABASE_UNAVAILABLE,
        },
    )
    def get(self, request):
        params = RecommendationParamsSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        user, session_key = _shopper(request)
        profile = params.validated_data["profile"]
        recommendations = recommend_for_user(
            user=user, session_key=session_key, profile=profile, k=params.validated_data["k"]
        )
        return _response(request, recommendations, profile)


@extend_schema_view(
    similar=extend_schema(
        summary=_("Products like this one, optionally personalised"),
        description=PERSONALISED_SIMILAR,
        tags=["visual search", "recommendations"],
        parameters=[PersonalisedSimilarParamsSerializer],
        responses={
            200: PolymorphicProxySerializer(
                component_name="SimilarProducts",
                serializers=[SearchResultsSerializer, RecommendationsSerializer],
                resource_type_field_name=None,
                many=False,
            ),
            400: BAD_PARAMETERS,
            404: UNKNOWN_PRODUCT,
            409: NOT_INDEXED,
            503: DATABASE_UNAVAILABLE,
        },
    )
)
class PersonalisedProductViewSet(ProductViewSet):
    """``/api/products/{id}/similar/`` with an optional ``profile`` that personalises it.

    Without ``profile`` the answer is visual search's (``SearchResults``: nearest photos
    under the filters); with ``profile`` (empty: the default profile) it is
    ``Recommendations``: the visual neighbours blended with collaborative filtering, the
    shopper's affinity and popularity under the same filters, each result with its reason.
    The project selects this viewset with ``VISUALSEARCH_API_PRODUCT_VIEWSET``.
    """

    client_description = PERSONALISED_SIMILAR
    similar_params_class = PersonalisedSimilarParamsSerializer

    def similar_response(self, request, product, params):
        if "profile" not in params.validated_data:
            return super().similar_response(request, product, params)
        return personalised_similar_response(request, product, params)
