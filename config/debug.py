"""What Django's debug error page gets wrong, put right for the development server.

With ``DEBUG`` on, Django answers a request it refuses as suspicious with its technical
page. For a request with more than ``DATA_UPLOAD_MAX_NUMBER_FIELDS`` parameters in its
address that page reads the parameters again to show them, fails the same way, and the
400 becomes a 500. :class:`TooManyFieldsMiddleware` reads them first and answers as the
project's ``handler400`` does with ``DEBUG`` off. The settings install it with ``DEBUG``
only (``make demo``).
"""

from django.core.exceptions import TooManyFieldsSent

from visualsearch.api.views import bad_request


class TooManyFieldsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            request.GET  # noqa: B018 - parsed here, where the refusal can still be a 400
        except TooManyFieldsSent as exc:
            return bad_request(request, exc)
        return self.get_response(request)
