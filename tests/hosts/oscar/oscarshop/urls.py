from django.apps import apps
from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.views.static import serve

urlpatterns = [
    path("admin/", admin.site.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    path("visual/", include("visualsearch.urls")),
    path("api/", include("visualsearch.api.urls")),
    path("api/", include("recommendations.api.urls")),
    path(
        f"{settings.MEDIA_URL.strip('/')}/<path:path>",
        serve,
        {"document_root": settings.MEDIA_ROOT},
    ),
    path("", include(apps.get_app_config("oscar").urls[0])),
]
