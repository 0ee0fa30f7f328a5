"""Both plugin apps' API in one include: ``path("api/", include("lookalike.api_urls"))``.

Visual search: ``products/{id}/similar/`` and ``search/image/``; recommendations:
``recommendations/`` (when the app is installed). Include the apps' own modules
(``visualsearch.api.urls``, ``recommendations.api.urls``) instead to mount them apart.
"""

from django.apps import apps
from django.urls import include, path

urlpatterns = [path("", include("visualsearch.api.urls"))]
if apps.is_installed("recommendations"):
    urlpatterns.append(path("", include("recommendations.api.urls")))
