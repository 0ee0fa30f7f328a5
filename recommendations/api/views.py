"""The recommendations API: "For you" and personalised "Similar items" as JSON.

Both answer for the shopper of the request: the signed-in user, or the anonymous session
(whose events personalise it after a few clicks). Parameters are validated by
:class:`~.serializers.RecommendationParamsSerializer`; a bad ``k`` or an unknown
``profile`` is a 400 naming the parameter.
"""

from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from visualsearch.api.serializers import SimilarParamsSerializer
from visualsearch.api.views import ProductViewSet

from ..services.blend import BUILTIN_SETTINGS, blend_similar, recommend_for_user
from .serializers import ErrorSerializer, RecommendationParamsSerializer, RecommendationsSerializer

_BAD_PARAMS = OpenApiResponse(
    OpenApiTypes.OBJECT, description=_("Invalid k or unknown profile; each field lists why.")
)


def _shopper(request):
    user = request.user if request.user.is_authenticated else None
    session = getattr(request, "session", None)
    return user, session.session_key if session is not None else None


def _response(request, recommendations, profile):
    data = RecommendationsSerializer(
        {
            "profile": profile.name if profile is not None else BUILTIN_SETTINGS.name,
            "results": recommendations,
        },
        context={"request": request},
    ).data
    return Response(data)


def personalised_similar_response(request, product):
    """The personalised "Similar items" of ``product`` for the request's shopper.

    For an API view that serves similar products and wants to honour ``?profile=`` (the
    visual-search ``GET /api/products/{id}/similar/``): it validates ``k`` and
    ``profile`` from the query string (raising DRF's ``ValidationError``, a 400) and
    returns the response.
    """
    params = RecommendationParamsSerializer(data=request.query_params)
    params.is_valid(raise_exception=True)
    user, session_key = _shopper(request)
    profile = params.validated_data["profile"]
    recommendations = blend_similar(
        product,
        user=user,
        session_key=session_key,
        profile=profile,
        k=params.validated_data["k"],
    )
    return _response(request, recommendations, profile)


class RecommendationsView(APIView):
    """Products recommended to the current shopper ("For you")."""

    @extend_schema(
        summary=_("Recommendations for the current shopper"),
        parameters=[RecommendationParamsSerializer],
        responses={200: RecommendationsSerializer, 400: _BAD_PARAMS},
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


class PersonalisedProductViewSet(ProductViewSet):
    """``/api/products/{id}/similar/`` with an optional ``profile`` that personalises it.

    Without ``profile`` the answer is visual search's (nearest photos under the filters);
    with ``profile`` (``default`` names the default profile) the visual neighbours are
    blended with collaborative filtering, the shopper's affinity and popularity, and each
    result carries its reason. The project selects this viewset with
    ``VISUALSEARCH_API_PRODUCT_VIEWSET``.
    """

    @extend_schema(
        summary=_("Products like this one, optionally personalised"),
        description=_(
            "Visual neighbours under the filters; with ``profile``, the blended and "
            'personalised "Similar items" of that blend profile for the current shopper, each '
            "with its reason."
        ),
        tags=["visual search", "recommendations"],
        parameters=[
            OpenApiParameter(
                "id", OpenApiTypes.INT, OpenApiParameter.PATH, description=_("Product id.")
            ),
            SimilarParamsSerializer,
            OpenApiParameter(
                "profile",
                OpenApiTypes.STR,
                description=_(
                    "Blend profile name (``default`` for the default profile); "
                    "personalises the results."
                ),
            ),
        ],
        responses={
            200: RecommendationsSerializer,
            400: _BAD_PARAMS,
            404: OpenApiResponse(ErrorSerializer, description=_("Unknown or inactive product.")),
            409: OpenApiResponse(ErrorSerializer, description=_("Not indexed yet (visual only).")),
        },
    )
    @action(detail=True, methods=["get"])
    def similar(self, request, pk=None):
        if "profile" not in request.query_params:
            return super().similar(request, pk)
        return personalised_similar_response(request, self.get_object())
