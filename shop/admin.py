from django.contrib import admin
from django.utils.html import format_html

from lookalike.admin_lookups import SafeLookupsMixin
from visualsearch.admin import compute_embeddings, find_similar_to_selected

from .models import Category, Product


@admin.register(Category)
class CategoryAdmin(SafeLookupsMixin, admin.ModelAdmin):
    list_display = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(Product)
class ProductAdmin(SafeLookupsMixin, admin.ModelAdmin):
    list_display = ["thumbnail", "title", "category", "price", "stock", "is_active", "updated_at"]
    list_display_links = ["thumbnail", "title"]
    list_filter = ["category", "is_active"]
    search_fields = ["title", "description"]
    list_select_related = ["category"]
    readonly_fields = ["preview", "created_at", "updated_at", "source_ref"]
    list_per_page = 50
    actions = [compute_embeddings, find_similar_to_selected]

    @admin.display(description="Image")
    def thumbnail(self, obj):
        if not obj.image:
            return "—"
        # The first link of the row: its picture names the product for screen readers.
        return format_html(
            '<img src="{}" alt="{}" width="48" height="48" style="object-fit:contain;'
            'background:#fff;border:1px solid #ddd;border-radius:4px">',
            obj.image.url,
            obj.title,
        )

    @admin.display(description="Preview")
    def preview(self, obj):
        if not obj.image:
            return "—"
        return format_html(
            '<img src="{}" alt="" width="224" style="image-rendering:auto">', obj.image.url
        )
