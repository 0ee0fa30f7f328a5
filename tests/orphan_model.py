"""A module whose import fails as one of an app missing from INSTALLED_APPS does: its model
belongs to no installed app (tests/test_app_settings.py)."""

from django.db import models


class Orphan(models.Model):
    def __str__(self):
        return "orphan"
