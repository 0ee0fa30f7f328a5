"""Visual-search API routes, included under /api/ by the project."""

from django.core.exceptions import ImproperlyConfigured
from django.urls import path
from rest_framework.routers import SimpleRouter

from . import product_viewset, views


def _product_viewset():
    """The viewset of ``VISUALSEARCH_API_PRODUCT_VIEWSET`` (a setting, so that a recommender
    can personalise the same endpoint).

    One that cannot be imported must not break the URLconf: ``manage.py check`` imports it,
    and would crash with a traceback instead of reporting the setting
    (``visualsearch.E010``). The default viewset's routes then answer every request with the
    ``ImproperlyConfigured`` that names the setting.
    """
    try:
        return product_viewset()
    except ImproperlyConfigured as exc:
        error = exc

    class MisconfiguredProductViewSet(views.ProductViewSet):
        def initial(self, request, *args, **kwargs):
            raise error

    return MisconfiguredProductViewSet


router = SimpleRouter()
router.register("products", _product_viewset(), basename="visualsearch-product")

urlpatterns = [
    path("search/image/", views.ImageSearchView.as_view(), name="visualsearch-image-search"),
    *router.urls,
]
