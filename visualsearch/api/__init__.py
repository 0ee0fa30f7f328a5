"""The visual-search API (Django REST framework): views, serializers and routes."""


def product_viewset():
    """The viewset class named by ``VISUALSEARCH_API_PRODUCT_VIEWSET``.

    Raises
    ------
    ImproperlyConfigured
        Naming the setting, when the path cannot be imported or is not a DRF viewset
        (check ``visualsearch.E010`` reports it).
    """
    from rest_framework.viewsets import ViewSetMixin

    from lookalike.conf import import_class

    from ..conf import app_settings

    return import_class(
        "VISUALSEARCH_API_PRODUCT_VIEWSET", app_settings.API_PRODUCT_VIEWSET, ViewSetMixin
    )
