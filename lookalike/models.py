"""The one table the shared app keeps: the products' states as last recorded."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class ProductState(models.Model):
    """A digest of what the plugins keep of one product (:mod:`lookalike.changes`), so that
    a change of a model the catalogue adapter depends on (an order's stock allocation) can
    tell whether it changed anything they show. A table, not the cache: a digest evicted
    from a cache would have to count as changed, and a busy cache would then move the
    catalogue's stamp on nearly every order."""

    #: The product's key as text (integer and UUID keys alike).
    key = models.CharField(_("product key"), max_length=255, primary_key=True)
    digest = models.CharField(_("digest"), max_length=16)

    class Meta:
        verbose_name = _("product state")
        verbose_name_plural = _("product states")

    def __str__(self):
        return f"{self.key}: {self.digest}"
