"""What the API tells its clients about itself: the answers documented for the operations
of both plugin apps, and each operation's description.

A view's description (the ``OPTIONS`` answer, the browsable API's heading) is DRF's by
default its class docstring, which is written for the code's maintainers (module paths,
settings, design notes) and is never translated. :class:`ClientDescription` answers with
the sentence the schema gives the operation instead, in the request's language.
"""

from django.utils.html import escape
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiResponse

from .serializers import ErrorSerializer, NotIndexedSerializer, ValidationErrorSerializer

#: Documented answers shared by the operations of both plugin apps.
BAD_PARAMETERS = OpenApiResponse(
    ValidationErrorSerializer, description=_("A parameter was refused; each one lists why.")
)
UNKNOWN_PRODUCT = OpenApiResponse(
    ErrorSerializer, description=_("No such product, or the shop does not show it.")
)
NOT_INDEXED = OpenApiResponse(
    NotIndexedSerializer,
    description=_(
        "The product has no vector: its photo is not indexed yet (``not_indexed``: ask "
        "again later), it has no photo (``no_image``) or its photo could not be analysed "
        "(``image_failed``). Visual search only."
    ),
)
DATABASE_UNAVAILABLE = OpenApiResponse(
    ErrorSerializer,
    description=_(
        "The database is briefly unavailable (a restart or a fail-over); Retry-After says "
        "when to try again."
    ),
)

SIMILAR = _(
    "The ``k`` active products whose photos look most like this product's, best first, "
    "under optional filters."
)
PHOTO_SEARCH = _(
    "Upload a photo (multipart field ``image``), optionally with a ``box`` to search with "
    "only part of it; answers the ``k`` most similar active products. Without a box, the "
    "products in the photo are found first (on a busy background, or several side by "
    "side), each is searched, and the results are fused; ``regions`` lists the products "
    "found with their own results."
)


class ClientDescription:
    """Describe the view to clients with ``client_description`` (the text of its schema's
    ``description``) rather than its docstring."""

    client_description = ""

    def get_view_description(self, html=False):
        # The schema's Markdown code spans (``k``) read as plain text: `k`.
        text = str(self.client_description).replace("``", "`")
        return mark_safe(f"<p>{escape(text)}</p>") if html else text
