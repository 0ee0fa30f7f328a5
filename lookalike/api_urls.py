"""Both plugin apps' API in one include: ``path("api/", include("lookalike.api_urls"))``.

Visual search: ``products/{id}/similar/`` and ``search/image/``; recommendations:
``recommendations/`` (when the app is installed). Include the apps' own modules
(``visualsearch.api.urls``, ``recommendations.api.urls``) instead to mount them apart.

Nothing here catches unknown paths, so that a project can mount more under the same prefix.
A project that wants JSON 404s for the rest of its API, as the OpenAPI schema promises, ends
it with ``re_path(r"^api/(?:.*/)?$", visualsearch.api.views.NotFoundView.as_view())`` after
every other ``api/`` route (the reference project's ``config/urls.py`` does).
"""

from django.apps import apps
from django.urls import include, path

urlpatterns = [path("", include("visualsearch.api.urls"))]
if apps.is_installed("recommendations"):
    urlpatterns.append(path("", include("recommendations.api.urls")))
