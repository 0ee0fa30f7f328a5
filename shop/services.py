"""Catalogue queries and the session cart, shared by the shop's views."""

from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal

from django.contrib.postgres.search import (
    SearchQuery,
    SearchRank,
    TrigramWordSimilarity,
)
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.db import connection, transaction
from django.db.models import F, QuerySet

from recommendations.events import record_event

from . import spelling
from .models import SEARCH_CONFIG, Product, search_document

CART_SESSION_KEY = "cart"


@dataclass(frozen=True)
class SearchResults:
    """What a keyword search found, and how: ``match`` is ``"all"`` (every word),
    ``"corrected"`` (every word of ``corrected``, the query with its misspelt words
    replaced), ``"some"`` (some of the words) or ``"alike"`` (titles with words spelt like
    the query's)."""

    products: QuerySet
    match: str
    corrected: str | None = None
    count: int | None = None  # how many ``products`` holds, when the search counted them


def search_products(query):
    """Active products matching ``query``, best first (a :class:`SearchResults`).

    Every word must match a word of the title or the description, stemmed (``coats`` finds
    "Coat", ``coat`` does not find "Coastal"); quoted phrases, ``or`` and ``-word`` work as
    in web search engines. Only when nothing matches does the search widen, step by step,
    and say so: the query with its misspelt words corrected against the catalogue's words
    (:mod:`shop.spelling`: ``sneeker`` finds sneakers), then products with some of the
    words (``blue shirt`` finds shirts when no title says blue), then titles with words
    spelt like the query's (pg_trgm word similarity).
    """
    query = query.strip()
    products = Product.objects.active().select_related("category")
    if not query:
        return SearchResults(products.none(), "all")
    matching = _matching(products, query)
    if count := _found(matching):
        return SearchResults(matching, "all", count=count)
    fixed = spelling.corrected(query)
    if fixed is not None:
        matching = _matching(products, fixed)
        if count := _found(matching):
            return SearchResults(matching, "corrected", fixed, count)
    words = _plain_words(fixed or query)
    if len(words) > 1:
        some = _matching(products, " or ".join(words))
        if count := _found(some):
            return SearchResults(some, "some", count=count)
    similar = (
        products.filter(title__trigram_word_similar=query)
        .annotate(rank=TrigramWordSimilarity(query, "title"))
        .order_by("-rank", "id")
    )
    return SearchResults(similar, "alike")


def _matching(products, query):
    words = SearchQuery(query, search_type="websearch", config=SEARCH_CONFIG)
    return (
        products.annotate(document=search_document())
        .filter(document=words)
        .annotate(rank=SearchRank(F("document"), words))
        .order_by("-rank", "id")
    )


def _found(matching):
    """How many products ``matching`` holds (the page's paginator reuses it). Counted, not
    ``exists()``: under its ``LIMIT 1`` PostgreSQL may prefer reading the table in order,
    hoping for an early match, over the text index, and for a search that matches nothing
    it then parses every product's text (190 ms on the demo catalogue, against 0.2 ms
    through the index)."""
    return matching.count()


def _plain_words(query):
    """The query's words to look for one at a time: none when it holds phrases or
    exclusions, whose meaning a list of alternatives would lose."""
    if '"' in query or any(word.startswith("-") for word in query.split()):
        return []
    return [word for word in query.split() if word.lower() != "or"]


class AlreadyBought(ValueError):
    """The cart was checked out by another request of the same session meanwhile."""

    def __init__(self):
        super().__init__("Your order is already confirmed.")


def _lock_session(key):
    """Hold the session's lock until the transaction ends: its cart changes one at a time."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"shop.cart:{key}"]
        )


def _items(stored):
    """``{product id: quantity}`` of a cart as the session stores it (keys as text)."""
    return {int(k): v for k, v in stored.items()}


def _stored(session):
    """The cart as stored now. From the database's row where the session engine keeps one
    (``db``, ``cached_db``: the cached copy may lag behind it); else from the engine."""
    if isinstance(session, DatabaseSessionStore):
        data = DatabaseSessionStore.load(session)
    else:
        data = session.load()
    return data.get(CART_SESSION_KEY, {})


class Cart:
    """A cart kept in the session: ``{product id: quantity}``."""

    def __init__(self, request):
        self.request = request
        self.session = request.session
        self.items = _items(self.session.get(CART_SESSION_KEY, {}))

    def _save(self):
        self.session[CART_SESSION_KEY] = {str(k): v for k, v in self.items.items()}

    @contextmanager
    def _changing(self):
        """Change the cart as it is stored now, one request of the session at a time.

        Each request loaded the session before its view ran: two adds at once (two tabs, a
        double click) would each store its own copy, and the last would win, the other's
        product lost although the shopper was told it was added. Under a lock on the
        session, the cart is read again from the store, changed, and stored before the lock
        goes; the middleware then leaves it alone (it would store this request's older copy
        again). A shopper without a session yet has nothing to race with."""
        key = self.session.session_key
        with transaction.atomic():
            if key:
                _lock_session(key)
                self.items = _items(_stored(self.session))
            yield
            if key:
                self.session.save()
                self.session.modified = False

    def add(self, product, quantity=1):
        with self._changing():
            self._add(product, quantity)

    def _add(self, product, quantity):
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

    def set_quantity(self, product, quantity):
        """Change how many of ``product``, already in the cart, the shopper wants; 0 takes
        it out. Only an add records a ``cart`` event: a change of mind is not new intent."""
        with self._changing():
            self._set_quantity(product, quantity)

    def _set_quantity(self, product, quantity):
        if product.pk not in self.items:
            raise ValueError(f"{product.title} is not in your cart.")
        if not quantity:
            self.items.pop(product.pk, None)
            self._save()
            return
        if not product.is_active:
            raise ValueError("This product is no longer sold.")
        if quantity > product.stock:
            if not product.stock:
                raise ValueError(f"{product.title} is out of stock.")
            raise ValueError(f"Only {product.stock} of {product.title} are in stock.")
        self.items[product.pk] = quantity
        self._save()

    def remove(self, product_id):
        with self._changing():
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
        """Buy everything in the cart: stock is taken atomically, or nothing is bought.

        One checkout of a session at a time: the same cart sent twice at once (a double
        click, a retried request) is bought once. Each request loaded the session before
        its view ran, so the cart is read again from the session's row under a lock held
        until this transaction ends, and the emptied cart is stored before the lock goes.
        A cart bought meanwhile raises :class:`AlreadyBought`.
        """
        if self.session.session_key:
            _lock_session(self.session.session_key)
            had_items = bool(self.items)
            self.items = _items(_stored(self.session))
            if had_items and not self.items:
                raise AlreadyBought()
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
        if self.session.session_key:
            self.session.save()  # before the lock is released: the next checkout finds it empty
        return lines
