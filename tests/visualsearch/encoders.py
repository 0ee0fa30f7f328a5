"""Cheap deterministic encoders for the visual-search tests (no torch, no weights)."""

import numpy as np

from visualsearch.encoders.base import Encoder, l2_normalize


class PixelEncoder(Encoder):
    """Grey image downsampled to ``side x side``; 64-d by default.

    One is added to every pixel so that no vector is zero (a zero vector has no cosine).
    """

    name = "pixel"
    side = 8
    weights_hash = "pixel-v1"

    @property
    def dim(self):
        return self.side * self.side

    def __init__(self):
        self.calls = 0

    def embed(self, images):
        from PIL import Image

        self.calls += 1
        rows = [
            np.asarray(
                im.convert("L").resize((self.side, self.side), Image.Resampling.BILINEAR),
                dtype=np.float32,
            ).ravel()
            + 1.0
            for im in images
        ]
        return l2_normalize(np.asarray(rows, dtype=np.float32).reshape(-1, self.dim))


class RetrainedPixelEncoder(PixelEncoder):
    """The same encoder with other "weights": its stored vectors become stale."""

    weights_hash = "pixel-v2"


class WidePixelEncoder(PixelEncoder):
    """Another encoder, of another dimension, sharing the embedding table."""

    name = "pixel16"
    side = 16
    weights_hash = "pixel16-v1"


class ProjectedPixelEncoder(PixelEncoder):
    """The pixel encoder with a learned category projection, as EfficientNet-Lite0 has one:
    ``raw_embed``, ``projection_path`` and a ``weights_hash`` that follows the projection."""

    name = "pixelproj"
    supports_projection = True

    def projection_path(self):
        from visualsearch.conf import app_settings
        from visualsearch.encoders.projection import projection_path

        return projection_path(app_settings.ARTIFACT_DIR, self.name, "pixel-v1")

    @property
    def projection(self):
        from visualsearch.encoders.projection import Projection

        path = self.projection_path()
        return Projection.load(path) if path.exists() else None

    @property
    def weights_hash(self):
        projection = self.projection
        return "pixel-v1" if projection is None else f"pixel-v1-{projection.digest}"

    def raw_embed(self, images):
        return PixelEncoder.embed(self, images)

    def postprocess(self, features):
        return self.postprocess_versioned(features)[0]

    def postprocess_versioned(self, features):
        projection = self.projection
        features = l2_normalize(features)
        weights = "pixel-v1" if projection is None else f"pixel-v1-{projection.digest}"
        return (features if projection is None else projection.apply(features)), weights

    def embed(self, images):
        return self.postprocess(self.raw_embed(images))

    def embed_versioned(self, images):
        return self.postprocess_versioned(self.raw_embed(images))
