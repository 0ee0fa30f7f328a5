"""Catalogue queries and the session cart, shared by the shop's views."""

from decimal import Decimal

from django.contrib.postgres.search import TrigramWordSimilarity
from django.db import transaction
from django.db.models import F, Q

from recommendations.events import record_event

from .models import Product

CART_SESSION_KEY = "cart"


def search_products(query):
    """Active products matching ``query`` by trigram word similarity or substring.

    Title matches rank above description matches; pg_trgm's GIN indexes serve both.
    """
    query = query.strip()
    if not query:
        return Product.objects.none()
    return (
        Product.objects.active()
        .annotate(
            rank=TrigramWordSimilarity(query, "title")
            + 0.5 * TrigramWordSimilarity(query, "description")
        )
        .filter(
            Q(title__trigram_word_similar=query)
            | Q(title__icontains=query)
            | Q(description__icontains=query)
        )
        .select_related("category")
        .order_by("-rank", "id")
    )


class Cart:
    """A cart kept in the session: ``{product id: quantity}``."""

    def __init__(self, request):
        self.request = request
        self.session = request.session
        self.items = {int(k): v for k, v in self.session.get(CART_SESSION_KEY, {}).items()}

    def _save(self):
        self.session[CART_SESSION_KEY] = {str(k): v for k, v in self.items.items()}

    def add(self, product, quantity=1):
        if not product.is_active:
            raise ValueError("This product is no longer sold.")
        current = self.items.get(product.pk, 0)
        if current + quantity > product.stock:
            left = max(product.stock - current, 0)
            held = f" ({current} already in your cart)" if current else ""
            if not product.stock:
                raise ValueError(f"{product.title} is out of stock.")
            if not left:
                raise ValueError(f"No more of {product.title} can be added{held}.")
            raise ValueError(f"Only {left} more of {product.title} can be added{held}.")
        self.items[product.pk] = current + quantity
        self._save()
        record_event(self.request, product, "cart")

    def remove(self, product_id):
        self.items.pop(int(product_id), None)
        self._save()

    def lines(self):
        products = Product.objects.in_bulk(self.items.keys())
        return [
            (products[pk], qty, products[pk].price * qty)
            for pk, qty in self.items.items()
            if pk in products
        ]

    @property
    def count(self):
        return sum(self.items.values())

    def total(self):
        return sum((line[2] for line in self.lines()), Decimal("0"))

    @transaction.atomic
    def checkout(self):
        """Buy everything in the cart: stock is taken atomically, or nothing is bought."""
        lines = self.lines()
        if not lines:
            raise ValueError("Your cart is empty.")
        for product, qty, _ in lines:
            updated = Product.objects.filter(pk=product.pk, stock__gte=qty, is_active=True).update(
                stock=F("stock") - qty
            )
            if not updated:
                transaction.set_rollback(True)
                raise ValueError(f"Sorry, {product.title} is no longer available in that quantity.")
        for product, _, _ in lines:
            record_event(self.request, product, "purchase")
        self.items = {}
        self._save()
        return lines
