"""torchvision ImageNet backbones (ResNet-50, MobileNetV3-Large) as encoders.

Offered as alternatives to the default EfficientNet-Lite0: ResNet-50 is the usual reference
point for off-the-shelf product retrieval, MobileNetV3-Large a faster one. Weights are never
downloaded: they come from a file named in ``VISUALSEARCH_WEIGHTS[name]`` or from torchvision's
own cache (``torch.hub.get_dir()/checkpoints``), e.g. filled by an operator with
``python -c "import torchvision; torchvision.models.resnet50(weights='DEFAULT')"``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .base import TorchEncoder, file_digest

__all__ = ["MobileNetV3LargeEncoder", "ResNet50Encoder", "TorchvisionEncoder"]


class TorchvisionEncoder(TorchEncoder):
    """A torchvision classifier with its classification head removed: pooled features.

    Parameters
    ----------
    pretrained : bool, optional
        ``False`` builds the network with random weights (seeded, so deterministic), for tests
        that must not need a weights file. Never downloads either way.
    weights_path : path-like, optional
        Explicit weights file; defaults to ``app_settings.WEIGHTS[name]``, then torchvision's
        cache.
    **kwargs
        See :class:`~visualsearch.encoders.base.TorchEncoder`.
    """

    #: torchvision builder name.
    arch: str = ""
    #: Names of torchvision's ``<Model>_Weights`` members to look for in the cache, best first.
    weight_members: tuple = ("IMAGENET1K_V2", "IMAGENET1K_V1")
    weights_enum: str = ""

    def __init__(self, *, pretrained=True, weights_path=None, **kwargs):
        super().__init__(**kwargs)
        self.pretrained = pretrained
        self._weights_path = weights_path

    def cache_candidates(self) -> list[Path]:
        """Files torchvision would have cached for this model's ImageNet weights."""
        import torch
        import torchvision.models as tvm

        enum = getattr(tvm, self.weights_enum)
        checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
        return [
            checkpoints / os.path.basename(getattr(enum, member).url)
            for member in self.weight_members
            if hasattr(enum, member)
        ]

    def resolve_weights(self) -> Path:
        """Locate the weights file without downloading anything.

        Raises
        ------
        django.core.exceptions.ImproperlyConfigured
            If no configured or cached file exists.
        """
        from django.core.exceptions import ImproperlyConfigured

        if self._weights_path is not None:
            configured = self._weights_path
        else:
            from visualsearch.conf import app_settings

            configured = (app_settings.WEIGHTS or {}).get(self.name)
        if configured:
            path = Path(configured)
            if not path.is_file():
                raise ImproperlyConfigured(
                    f"Weights file for encoder {self.name!r} not found: {path} "
                    f"(VISUALSEARCH_WEIGHTS[{self.name!r}])."
                )
            return path
        candidates = self.cache_candidates()
        for path in candidates:
            if path.is_file():
                return path
        raise ImproperlyConfigured(
            f"No weights for encoder {self.name!r}: set VISUALSEARCH_WEIGHTS[{self.name!r}] to "
            f"a local .pth file, or place torchvision's file in its cache (looked for "
            f"{', '.join(str(p) for p in candidates)}). Weights are never downloaded at run time."
        )

    def backbone_hash(self) -> str:
        if not self.pretrained:
            return hashlib.sha256(f"{self.arch}:random-seed-0".encode()).hexdigest()[:16]
        return file_digest(self.resolve_weights())

    def build_module(self):
        import torch
        import torchvision.models as tvm

        builder = getattr(tvm, self.arch)
        if self.pretrained:
            path = self.resolve_weights()
            model = builder(weights=None)
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        else:
            # Seeded so that tests on random weights are deterministic, without disturbing
            # the caller's global RNG state.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                model = builder(weights=None)
        self.remove_head(model)
        return model.eval()

    def remove_head(self, model):
        raise NotImplementedError


class ResNet50Encoder(TorchvisionEncoder):
    """ResNet-50, 2048-d global-average-pooled features."""

    name = "resnet50"
    dim = 2048
    arch = "resnet50"
    weights_enum = "ResNet50_Weights"

    def remove_head(self, model):
        import torch

        model.fc = torch.nn.Identity()


class MobileNetV3LargeEncoder(TorchvisionEncoder):
    """MobileNetV3-Large, 960-d pooled features (before the 1280-d classifier layer).

    The first classifier layer is trained for classification only; the 960-d pooled output of
    the convolutional trunk is the more general representation.
    """

    name = "mobilenet_v3_large"
    dim = 960
    arch = "mobilenet_v3_large"
    weights_enum = "MobileNet_V3_Large_Weights"

    def remove_head(self, model):
        import torch

        model.classifier = torch.nn.Identity()
