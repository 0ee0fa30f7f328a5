"""Template helpers of the Oscar card: ``{% load lookalike_oscar %}``.

``{{ product|main_image }}`` is the product's main image as the file of Oscar's
``ProductImage.original`` field, which Oscar's ``{% oscar_thumbnail %}`` accepts whatever
thumbnailer the shop configured (sorl-thumbnail, easy-thumbnails).
"""

from django import template
from django.db.models.fields.files import ImageFieldFile

from lookalike.catalogue import get_adapter

register = template.Library()


@register.filter
def main_image(product):
    """The main image's file (read from the adapter's annotation, no query when the product
    was loaded through it), or ``None`` without an image."""
    adapter = get_adapter()
    name = adapter.get_image_name(product)
    if not name:
        return None
    field = adapter.get_model("catalogue", "ProductImage")._meta.get_field("original")
    return ImageFieldFile(None, field, name)
