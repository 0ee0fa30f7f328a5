"""The API of the plugin apps, mounted under /api/."""

from django.urls import include, path

urlpatterns = [
    path("", include("visualsearch.api.urls")),
    path("", include("recommendations.api.urls")),
]
