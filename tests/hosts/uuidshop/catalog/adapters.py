"""The catalogue adapter of docs/install.md ("A custom adapter"), as a shop would write it."""

from django.db.models import DecimalField, F, OuterRef, Subquery
from django.db.models.functions import Cast

from lookalike.catalogue import CatalogueAdapter

from .models import Department, Item, ItemPhoto


class ItemAdapter(CatalogueAdapter):
    # An item sits in several departments: filters go through filter_category().
    categories_are_exclusive = False

    def get_queryset(self):
        return Item.objects.filter(listed=True)

    def image_name_expression(self):
        first = ItemPhoto.objects.filter(item=OuterRef("pk")).order_by("position", "pk")
        return Subquery(first.values("file")[:1])

    def get_image_storage(self):
        return ItemPhoto._meta.get_field("file").storage

    def get_title(self, item):
        return item.name

    def category_key_expression(self):
        links = Item.departments.through.objects.filter(item=OuterRef("pk")).order_by("pk")
        return Subquery(links.values("department_id")[:1])

    def get_category_queryset(self):
        return Department.objects.order_by("name")

    def filter_category(self, queryset, key):
        return queryset.filter(departments=key)

    def price_expression(self):
        # Cast the cents before dividing: integer / integer is integer division in SQL.
        return Cast(
            Cast("price_cents", DecimalField(max_digits=12, decimal_places=2)) / 100,
            DecimalField(max_digits=12, decimal_places=2),
        )

    def filter_in_stock(self, queryset):
        return queryset.filter(quantity__gt=0)

    def is_in_stock(self, item):
        return item.quantity > 0

    def created_expression(self):
        return F("added")

    def get_dependent_models(self):
        # A new first photo changes the image that is embedded.
        return {ItemPhoto: lambda photo: [photo.item_id]}
