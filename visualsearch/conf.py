"""Settings of the visual-search app, read from Django settings on every access.

Each setting is a property so that ``override_settings`` and pytest-django's
``settings`` fixture take effect at once; nothing is copied into module constants.
All names carry the ``VISUALSEARCH_`` prefix in the project's settings.
"""

from pathlib import Path


class AppSettings:
    prefix = "VISUALSEARCH_"

    def _setting(self, name, default):
        from django.conf import settings

        return getattr(settings, self.prefix + name, default)

    # -- the host shop's product model -------------------------------------------
    @property
    def PRODUCT_MODEL(self):
        """``app_label.ModelName`` of the product model; the same setting as the FK target."""
        from django.conf import settings

        return getattr(settings, "LOOKALIKE_PRODUCT_MODEL", "shop.Product")

    @property
    def PRODUCT_FIELDS(self):
        """Names of the product fields this app reads; a shop maps its own names here."""
        fields = {
            "image": "image",
            "title": "title",
            "category": "category",
            "price": "price",
            "stock": "stock",
            "active": "is_active",
        }
        fields.update(self._setting("PRODUCT_FIELDS", {}))
        return fields

    # -- encoders ----------------------------------------------------------------
    @property
    def ENCODER(self):
        """Name of the encoder that indexing and search use (see ``visualsearch.encoders``)."""
        return self._setting("ENCODER", "efficientnet_lite0")

    @property
    def WEIGHTS(self):
        """Optional ``{encoder name: path to a local weights file}`` for torchvision backbones."""
        return self._setting("WEIGHTS", {})

    @property
    def ARTIFACT_DIR(self):
        """Where exported inference models and learned projections are cached."""
        from django.conf import settings

        default = Path(getattr(settings, "VAR_DIR", Path.cwd() / "var")) / "models"
        return Path(self._setting("ARTIFACT_DIR", default))

    @property
    def BATCH_SIZE(self):
        return self._setting("BATCH_SIZE", 32)

    @property
    def RUNTIME(self):
        """How encoders run their network: ``"auto"`` (ONNX Runtime, falling back to torch
        eager when it is unavailable), ``"onnxruntime"`` or ``"torch"``."""
        return self._setting("RUNTIME", "auto")

    @property
    def INFERENCE_THREADS(self):
        """Intra-op threads for encoder inference; ``None`` uses every CPU core."""
        return self._setting("INFERENCE_THREADS", None)


app_settings = AppSettings()
