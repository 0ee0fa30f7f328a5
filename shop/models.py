from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector
from django.db import models
from django.urls import reverse

#: PostgreSQL's text search configuration for keyword search (stemming, stop words).
SEARCH_CONFIG = "english"


def search_document():
    """The text keyword search reads (:func:`shop.services.search_products`): titles weigh
    most, descriptions least. The ``product_search_document`` index holds the same
    expression, so PostgreSQL answers a match from the index."""
    return SearchVector("title", weight="A", config=SEARCH_CONFIG) + SearchVector(
        "description", weight="D", config=SEARCH_CONFIG
    )


class Category(models.Model):
    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "categories"

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("shop:category", args=[self.slug])


class ProductQuerySet(models.QuerySet):
    def active(self):
        return self.filter(is_active=True)


class Product(models.Model):
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="products")
    price = models.DecimalField(max_digits=10, decimal_places=2)
    stock = models.PositiveIntegerField(default=0)
    image = models.ImageField(upload_to="products/", blank=True)
    is_active = models.BooleanField(default=True)
    # Where a demo product came from (e.g. "fashion-mnist:train:123"), so that
    # loading the demo catalogue twice adds nothing twice.
    source_ref = models.CharField(max_length=100, unique=True, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ProductQuerySet.as_manager()

    class Meta:
        ordering = ["title", "id"]
        indexes = [
            # Keyword search: words (full text), then titles spelt alike (trigrams).
            GinIndex(search_document(), name="product_search_document"),
            GinIndex(
                name="product_title_trgm",
                fields=["title"],
                opclasses=["gin_trgm_ops"],
            ),
            # Visual-search filters: category + price band, or a price band alone.
            models.Index(fields=["category", "price"]),
            models.Index(fields=["price"]),
        ]

    def __str__(self):
        return self.title

    def get_absolute_url(self):
        return reverse("shop:product", args=[self.pk])

    @property
    def in_stock(self):
        return self.stock > 0
