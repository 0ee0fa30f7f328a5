from lookalike.catalogue import CATALOGUE

from .models import Category
from .services import Cart


def _navigation():
    categories = list(Category.objects.all())
    for category in categories:
        category.url = category.get_absolute_url()  # reversed once, not on every page
    return categories


def shop(request):
    # The navigation is the same on every page until a category is saved: kept per process
    # under the catalogue's stamp instead of a query per page.
    return {
        "nav_categories": CATALOGUE.get("shop.nav", _navigation),
        "cart_count": Cart(request).count if hasattr(request, "session") else 0,
    }
