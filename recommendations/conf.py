"""Settings of the recommendations app, read from Django settings on every access.

All names carry the ``RECOMMENDATIONS_`` prefix in the project's settings.
"""

from pathlib import Path


class AppSettings:
    prefix = "RECOMMENDATIONS_"

    def _setting(self, name, default):
        from django.conf import settings

        return getattr(settings, self.prefix + name, default)

    @property
    def EVENT_WEIGHTS(self):
        """Confidence given to each event kind when events become a user-item matrix."""
        weights = {"view": 1.0, "similar_click": 2.0, "cart": 4.0, "purchase": 8.0}
        weights.update(self._setting("EVENT_WEIGHTS", {}))
        return weights

    @property
    def HALF_LIFE_DAYS(self):
        """Half-life of an event's weight in days; ``None`` turns time decay off."""
        return self._setting("HALF_LIFE_DAYS", 30)

    @property
    def ARTIFACT_DIR(self):
        """Where trained model artefacts (``.npz``) are written."""
        from django.conf import settings

        default = Path(getattr(settings, "VAR_DIR", Path.cwd() / "var")) / "recommender"
        return Path(self._setting("ARTIFACT_DIR", default))


app_settings = AppSettings()
