from django.conf import settings
from django.db import models


class Event(models.Model):
    """One shopper interaction with a product: the raw material of the recommender.

    Anonymous shoppers are identified by their session key so that their clicks can
    personalise recommendations before they sign in.
    """

    class Kind(models.TextChoices):
        VIEW = "view", "Viewed"
        SIMILAR_CLICK = "similar_click", "Clicked a similar item"
        CART = "cart", "Added to cart"
        PURCHASE = "purchase", "Purchased"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE
    )
    session_key = models.CharField(max_length=40, blank=True, db_index=True)
    product = models.ForeignKey(
        settings.LOOKALIKE_PRODUCT_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    created_at = models.DateTimeField(db_index=True)
    # Where the click came from (a widget, "find similar"), for analysis.
    source = models.CharField(max_length=50, blank=True)
    # Events made by `simulate_shoppers` are marked so they are never mistaken for real ones.
    simulated = models.BooleanField(default=False)

    class Meta:
        indexes = [models.Index(fields=["user", "created_at"])]

    def __str__(self):
        who = self.user_id or self.session_key[:8]
        return f"{who} {self.kind} {self.product_id}"
