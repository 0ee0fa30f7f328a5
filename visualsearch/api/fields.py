"""The API's parameter fields, each parsed exactly as the OpenAPI schema documents it (see
:mod:`.serializers`): DRF's own fields take more than their schema says."""

import re

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

__all__ = [
    "BOX_PATTERN",
    "PRICE_PATTERN",
    "BoxField",
    "PhotoField",
    "PriceField",
    "StrictBooleanField",
    "StrictIntegerField",
]

#: A price: 8 whole digits after any leading zeros, 2 decimals, ASCII digits (not ``\d``).
PRICE_PATTERN = r"^0*[0-9]{1,8}(?:\.[0-9]{1,2})?$"
#: A crop box: four whole numbers of pixels (``12.0`` too: browsers report fractions).
BOX_PATTERN = r"^\s*[0-9]+(?:\.0*)?\s*(?:,\s*[0-9]+(?:\.0*)?\s*){3}$"


class StrictIntegerField(serializers.IntegerField):
    """An integer written as digits, as the schema's ``integer`` says (DRF also takes
    ``5.0`` and surrounding spaces)."""

    def to_internal_value(self, data):
        if isinstance(data, str) and not re.fullmatch(r"-?[0-9]+", data):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """``true`` or ``false`` (in any case), as the schema's ``boolean`` says (DRF also takes
    ``1``, ``yes``, ``on``...)."""

    def to_internal_value(self, data):
        if isinstance(data, str) and data.lower() in ("true", "false"):
            return data.lower() == "true"
        if isinstance(data, bool):
            return data
        self.fail("invalid", input=data)


@extend_schema_field({"type": "string", "format": "decimal", "pattern": PRICE_PATTERN})
class PriceField(serializers.DecimalField):
    """A non-negative price in currency units, written ``12`` or ``12.50``."""

    default_error_messages = {
        "invalid": _("Write a price as digits with up to two decimals, like 12 or 12.50."),
        "negative": _("A price cannot be below zero."),
    }

    def __init__(self, **kwargs):
        super().__init__(max_digits=10, decimal_places=2, min_value=0, **kwargs)

    def to_internal_value(self, data):
        if not re.fullmatch(PRICE_PATTERN, text := str(data)):
            # Say what is wrong with a number written otherwise: its sign, its decimals or
            # its size; anything else is not written as a price.
            if re.fullmatch(r"-[0-9]+(?:\.[0-9]+)?", text):
                self.fail("negative")
            if re.fullmatch(r"[0-9]+\.[0-9]{3,}", text):
                self.fail("max_decimal_places", max_decimal_places=self.decimal_places)
            if re.fullmatch(r"0*[1-9][0-9]{8,}(?:\.[0-9]*)?", text):
                self.fail("max_whole_digits", max_whole_digits=self.max_whole_digits)
            self.fail("invalid")
        return super().to_internal_value(data)


@extend_schema_field({"type": "string", "format": "binary"})
class PhotoField(serializers.FileField):
    """The uploaded photo, documented as the file it is (DRF's schema for a ``FileField``
    is a URL, as it reads back in a response)."""


@extend_schema_field({"type": "string", "pattern": BOX_PATTERN})
class BoxField(serializers.CharField):
    """The crop box, documented by its pattern; :func:`~visualsearch.uploads.read_photo`
    parses it and says why a box is refused (not four numbers, not inside the photo)."""
