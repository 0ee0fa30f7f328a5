import uuid

from django.db import models
from django.urls import reverse


class Department(models.Model):
    name = models.CharField(max_length=100)

    def __str__(self):
        return self.name


class Item(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    departments = models.ManyToManyField(Department, related_name="items", blank=True)
    price_cents = models.PositiveIntegerField()
    quantity = models.PositiveIntegerField(default=0)
    listed = models.BooleanField(default=True)
    added = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("item", args=[self.pk])


class ItemPhoto(models.Model):
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="photos")
    file = models.ImageField(upload_to="items/")
    position = models.PositiveSmallIntegerField(default=0)

    def __str__(self):
        return f"Photo {self.position} of {self.item}"
