"""The visual-search API: similar products, and search by an uploaded photo.

Both endpoints validate their input with a serializer, call the same services as the pages
and answer with the same result cards. Every answer, errors included, is JSON of a shape the
OpenAPI schema documents; each status code a request can get is documented, and each one
documented can happen (``tests/test_api_schema.py`` holds the API to that).
"""

from django.conf import settings
from django.core.exceptions import TooManyFieldsSent
from django.http import Http404, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views import defaults
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import (
    APIException,
    NotFound,
    ParseError,
    UnsupportedMediaType,
    ValidationError,
)
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from lookalike.catalogue import get_adapter

from .. import search
from ..concurrency import Busy, photo_search_slot
from ..indexing.state import why_unindexed
from ..previews import scale_box
from ..products import stands_for
from ..throttling import PhotoSearchThrottle
from ..upload_handlers import accept_photo_upload, body_refusal
from .documented import (
    BAD_PARAMETERS,
    DATABASE_UNAVAILABLE,
    NOT_INDEXED,
    PHOTO_SEARCH,
    SIMILAR,
    UNKNOWN_PRODUCT,
    ClientDescription,
)
from .serializers import (
    ErrorSerializer,
    ImageSearchSerializer,
    PhotoSearchResultsSerializer,
    SearchResultsSerializer,
    SimilarParamsSerializer,
    ValidationErrorSerializer,
)


class BusyError(APIException):
    """Every photo-search slot of the process stayed taken (:mod:`visualsearch.concurrency`)."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = _("Too many photo searches at once; please try again in a few seconds.")
    default_code = "busy"


class NotIndexedError(APIException):
    """The product has no vector; the code and message say why
    (:func:`~visualsearch.indexing.state.why_unindexed`), so that a client knows whether
    asking again later can help."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = _("This product's photo has not been indexed yet; try again later.")
    default_code = "not_indexed"
    #: ``(detail, code)`` for each reason a product has no vector.
    REASONS = {
        "pending": (default_detail, default_code),
        "no_image": (_("This product has no photo, so it has no look-alikes."), "no_image"),
        "failed": (
            _(
                "This product's photo could not be analysed; it has no look-alikes until the "
                "photo is replaced."
            ),
            "image_failed",
        ),
    }

    @classmethod
    def for_product(cls, product_id):
        """The error for ``product_id``: ``{"detail": message, "code": code}``."""
        detail, code = cls.REASONS[why_unindexed(product_id).kind]
        return cls({"detail": detail, "code": code}, code)


def results_response(request, pairs):
    return Response(SearchResultsSerializer({"results": pairs}, context={"request": request}).data)


class ProductViewSet(ClientDescription, viewsets.GenericViewSet):
    """Products, seen from visual search; only the ``similar`` action is served here."""

    client_description = SIMILAR
    # Any key without a slash (a SKU may hold dots; the API has no format suffixes), parsed
    # by the adapter: ``1.5`` for an integer key is a JSON 404. Named ``id`` in the URL, as
    # the schema names any key, and read as ``pk`` whatever the key field is called (a
    # shop's ``sku``), so that the schema types it from that field.
    lookup_value_regex = r"[^/]+"
    lookup_url_kwarg = "id"
    serializer_class = SearchResultsSerializer
    similar_params_class = SimilarParamsSerializer

    def get_queryset(self):
        adapter = get_adapter()
        return adapter.annotate(adapter.get_queryset())

    def get_object(self):
        """The product of the URL's key; a product that another stands for (an Oscar
        variant) is answered as that one (its parent). One message for every missing
        product, whatever the key looked like (DRF's own names the model). int() reads
        "+1", "01" and other scripts' digits ("１"): the pages redirect such spellings to
        the product's address, the API answers at one."""
        text = self.kwargs[self.lookup_url_kwarg]
        try:
            key = get_adapter().parse_pk(text)
            if isinstance(key, int) and text != str(key):
                raise Http404
            return self._product_of(key)
        except (ValueError, Http404):
            raise Http404(gettext("No such product.")) from None

    def _product_of(self, key):
        self.kwargs[self.lookup_url_kwarg] = key
        try:
            return super().get_object()
        except Http404:
            other = stands_for(key)
            if other is None:
                raise
        self.kwargs[self.lookup_url_kwarg] = other
        return super().get_object()

    def similar_hits(self, product, params):
        """The ranked hits for ``product``; the place to blend in other signals."""
        return search.remembered.similar_to_product(
            product.pk, k=params.validated_data["k"], filters=params.get_filters()
        )

    @extend_schema(
        summary=_("Products that look like this one"),
        description=SIMILAR,
        tags=["visual search"],
        parameters=[SimilarParamsSerializer],
        responses={
            200: SearchResultsSerializer,
            400: BAD_PARAMETERS,
            404: UNKNOWN_PRODUCT,
            409: NOT_INDEXED,
            503: DATABASE_UNAVAILABLE,
        },
    )
    @action(detail=True, methods=["get"])
    def similar(self, request, id=None):  # noqa: A002 (the URL's name for the key)
        product = self.get_object()
        params = self.similar_params_class(data=request.query_params)
        params.is_valid(raise_exception=True)
        return self.similar_response(request, product, params)

    def similar_response(self, request, product, params):
        """The answer for ``product`` under the validated ``params``; a subclass may answer
        another shape for its own parameters (and document it). The filters are checked
        again on the hits, which may be kept (search.remembered): asked again if stale."""
        try:
            results = search.remembered.show_current(
                lambda: self.similar_hits(product, params),
                lambda hits: search.hydrate(hits, params.get_filters()),
            )
        except search.NotIndexed as exc:
            raise NotIndexedError.for_product(product.pk) from exc
        return results_response(request, results)


class PhotoMultiPartParser(MultiPartParser):
    """DRF's multipart parser, answering a body that Django's parser could not split with
    the photo search's own message rather than the parser's words."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except ParseError as exc:
            if isinstance(exc.__context__, MultiPartParserError):
                raise ParseError(body_refusal(exc.__context__)) from exc
            raise


class ImageSearchView(ClientDescription, APIView):
    """Find products that look like an uploaded photo, or a part of it."""

    client_description = PHOTO_SEARCH
    # Multipart only: a photo cannot travel in a urlencoded form, so anything else is a 415.
    parser_classes = [PhotoMultiPartParser]
    # One allowance per client, shared with the "Search by photo" page.
    throttle_classes = [PhotoSearchThrottle]

    def handle_exception(self, exc):
        # A body Django's parser refused (too many fields, a field too large, a malformed
        # multipart body) is a 400 with its message, as JSON like every answer here.
        message = body_refusal(exc)
        if isinstance(exc, TooManyFieldsSent) and _too_many_in_url(self.request):
            message = gettext("The request has too many parameters.")
        elif _unreadable_multipart(self.request, exc):
            message = body_refusal(MultiPartParserError())
        if message is not None:
            exc = ParseError(message)
        return super().handle_exception(exc)

    def initialize_request(self, request, *args, **kwargs):
        # Before DRF parses anything: the photo is read in memory, never past
        # VISUALSEARCH_MAX_UPLOAD_BYTES, and a body announced larger is not read at all
        # (visualsearch.upload_handlers); the serializer then refuses it as too large.
        accept_photo_upload(request)
        return super().initialize_request(request, *args, **kwargs)

    @extend_schema(
        summary=_("Search by photo"),
        description=PHOTO_SEARCH,
        tags=["visual search"],
        request={"multipart/form-data": ImageSearchSerializer},
        parameters=[
            OpenApiParameter(
                "Retry-After",
                OpenApiTypes.INT,
                OpenApiParameter.HEADER,
                required=True,
                response=[429],
                description=_("Seconds until the next photo search is allowed."),
            ),
        ],
        responses={
            200: PhotoSearchResultsSerializer,
            400: OpenApiResponse(
                ValidationErrorSerializer,
                description=_(
                    "The photo or a parameter was refused (a file that is not a photo, too "
                    "large, a box outside it...); each field lists why."
                ),
            ),
            403: OpenApiResponse(
                ErrorSerializer,
                description=_("A signed-in session sent no CSRF token."),
            ),
            415: OpenApiResponse(
                ErrorSerializer, description=_("The body is not multipart/form-data.")
            ),
            429: OpenApiResponse(
                ErrorSerializer,
                description=_(
                    "Too many photo searches from this client (through the API and the "
                    "page together); Retry-After says when to try again."
                ),
            ),
            503: OpenApiResponse(
                ErrorSerializer,
                description=_(
                    "The server is busy with other photo searches, or the database is "
                    "briefly unavailable; Retry-After says when to try again."
                ),
            ),
        },
    )
    def post(self, request):
        # Parameters come as the body's fields: ones in the address would be silently
        # ignored, and a client that sent k=2 there would not know why it got twelve.
        if request.query_params:
            raise ValidationError(
                {
                    name: [gettext("Send it as a field of the multipart body, not in the URL.")]
                    for name in sorted(request.query_params)
                }
            )
        # Decoding and embedding hold one of the process's few slots: memory stays bounded
        # however many requests arrive at once.
        try:
            with photo_search_slot():
                params = ImageSearchSerializer(data=request.data)
                params.is_valid(raise_exception=True)
                photo = params.validated_data["photo"]
                # A shopper's own box has said where the product is.
                [found] = search.search_photos(
                    [photo.query],
                    k=params.validated_data["k"],
                    filters=params.get_filters(),
                    localise=photo.box is None,
                )
        except Busy as exc:
            response = self.handle_exception(BusyError())
            response["Retry-After"] = str(exc.retry_after)
            return response
        full_size = photo.size or photo.query.size
        regions = [
            (scale_box(region.box, photo.query.size, full_size), search.hydrate(region.hits))
            for region in found.regions
        ]
        data = PhotoSearchResultsSerializer(
            {
                "results": search.hydrate(found.hits),
                "regions": regions,
                "close_match": found.close_match,
            },
            context={"request": request},
        ).data
        return Response(data)


class NotFoundView(APIView):
    """The JSON 404 for every path under ``/api/`` that no endpoint serves, whatever the
    method; the project routes what is left of ``/api/`` here (``config/urls.py``), after
    the endpoints, the schema and its documentation."""

    authentication_classes = []
    permission_classes = []
    schema = None  # not an operation of the API

    def http_method_not_allowed(self, request, *args, **kwargs):
        raise NotFound()

    def get(self, request, *args, **kwargs):
        raise NotFound()

    post = put = patch = delete = options = get


def _unreadable_multipart(request, exc):
    """Whether ``exc`` is DRF's answer to a multipart body whose boundary is missing or
    longer than the 70 characters RFC 2046 allows, which DRF calls an unsupported media
    type: the client did send a multipart form, so the message says the upload could not
    be read, as for any other malformed body (:class:`PhotoMultiPartParser`)."""
    content_type = request.content_type or ""
    return content_type.startswith("multipart/form-data") and isinstance(exc, UnsupportedMediaType)


def _too_many_in_url(request):
    """Whether the address alone holds more parameters than Django reads."""
    limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
    query = request.META.get("QUERY_STRING", "")
    return limit is not None and query.count("&") + 1 > limit


def _for_the_api(request):
    """Whether an error answers a request of the API: one an API view was serving, or one
    under ``/api/`` (not resolved yet, or resolved to nothing)."""
    view = getattr(getattr(request, "resolver_match", None), "func", None)
    api_view = isinstance(getattr(view, "cls", None), type) and issubclass(view.cls, APIView)
    return api_view or request.path.startswith("/api/")


def server_error(request, *args, **kwargs):
    """A ``handler500`` for the project's URLconf: a JSON 500 (``{"detail": ...}``, as every
    other error of the API) for a request of the API; Django's own page elsewhere. Django
    calls ``handler500`` only with ``DEBUG`` off."""
    if _for_the_api(request):
        message = gettext("Something went wrong on our side; the error has been logged.")
        return JsonResponse({"detail": message}, status=500)
    return defaults.server_error(request, *args, **kwargs)


def bad_request(request, exception, *args, **kwargs):
    """A ``handler400`` for the project's URLconf: a JSON 400 with a message for a request
    of the API that Django refused before any view ran (more than
    ``DATA_UPLOAD_MAX_NUMBER_FIELDS`` parameters in its URL, say); Django's own page
    elsewhere. Django calls ``handler400`` only with ``DEBUG`` off."""
    if _for_the_api(request):
        if isinstance(exception, TooManyFieldsSent):
            message = gettext("The request has too many parameters.")
        else:
            message = body_refusal(exception) or gettext("The request could not be read.")
        return JsonResponse({"detail": str(message)}, status=400)
    return defaults.bad_request(request, exception, *args, **kwargs)
