from catalog import views
from django.urls import include, path

urlpatterns = [
    path("visual/", include("visualsearch.urls")),
    path("api/", include("lookalike.api_urls")),
    path("items/<uuid:pk>/", views.item, name="item"),
    path("", views.home, name="home"),
]
