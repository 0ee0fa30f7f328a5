"""A lost database is one clean 503, not a 500 with a traceback.

When PostgreSQL restarts or fails over, requests in flight lose their connection. Django
would answer them with its 500 page; this middleware answers 503 Service Unavailable with a
``Retry-After`` header instead (JSON under ``/api/``), logs the error once per request, and
drops the broken connection, so the next request opens a new one and succeeds once the
database is back. Add it to ``MIDDLEWARE`` after Django's own.
"""

import logging

from django.db import InterfaceError, OperationalError, connections
from django.http import HttpResponse, JsonResponse
from django.utils.translation import gettext as _

logger = logging.getLogger(__name__)

#: Seconds a client is asked to wait before trying again.
RETRY_AFTER = 5


class DatabaseUnavailableMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, (OperationalError, InterfaceError)):
            return None
        logger.error(
            "The database is unavailable (%s %s): %s", request.method, request.path, exception
        )
        for connection in connections.all(initialized_only=True):
            try:
                connection.close()
            except Exception:  # noqa: BLE001 - already broken; it is being dropped
                pass
        message = _("The shop is briefly unavailable; please try again in a few seconds.")
        if request.path.startswith("/api/"):
            response = JsonResponse({"detail": message}, status=503)
        else:
            response = HttpResponse(message, status=503, content_type="text/plain; charset=utf-8")
        response["Retry-After"] = str(RETRY_AFTER)
        return response
