from .models import Category
from .services import Cart


def shop(request):
    return {
        "nav_categories": Category.objects.all(),
        "cart_count": Cart(request).count if hasattr(request, "session") else 0,
    }
