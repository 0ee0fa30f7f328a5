"""Visual-search API routes, included under /api/ by the project."""

from django.urls import path
from django.utils.module_loading import import_string
from rest_framework.routers import SimpleRouter

from ..conf import app_settings
from . import views

router = SimpleRouter()
# The viewset is a setting so that a recommender can personalise the same endpoint.
router.register(
    "products", import_string(app_settings.API_PRODUCT_VIEWSET), basename="visualsearch-product"
)

urlpatterns = [
    path("search/image/", views.ImageSearchView.as_view(), name="visualsearch-image-search"),
    *router.urls,
]
