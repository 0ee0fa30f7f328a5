"""What error pages and error reports may show.

Django's filter hides settings and request headers whose names mention keys, tokens,
secrets or passwords. Connection strings (``DATABASE_URL``, ``CELERY_BROKER_URL``,
``REDIS_URL``) carry passwords too, and the development server copies the process
environment into every request's ``META``: they are hidden as well.
"""

import re

from django.views.debug import SafeExceptionReporterFilter


class ReporterFilter(SafeExceptionReporterFilter):
    hidden_settings = re.compile(
        "API|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|_URL$|DSN|BROKER|DATABASE",
        flags=re.IGNORECASE,
    )
