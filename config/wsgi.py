"""The WSGI application of the reference shop (gunicorn and the development server).

Each web process starts loading photo search's network in the background as it starts
(``visualsearch.warmup``), so the first shopper to search by photo does not wait for it;
``LOOKALIKE_WARM_UP=0`` turns that off.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

if os.environ.get("LOOKALIKE_WARM_UP", "1") != "0":
    from visualsearch.warmup import warm_up_in_background

    warm_up_in_background()
