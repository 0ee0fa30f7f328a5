"""The encoder interface and the machinery shared by the torch-based encoders.

An encoder turns product photos into L2-normalised vectors whose dot product (cosine
similarity) ranks visually similar products. Everything that decides what a vector means --
weights, preprocessing, pooling, a learned projection -- lives inside the encoder and is
summarised by :attr:`Encoder.weights_hash`, so that stored embeddings can be recognised as stale
when any of it changes.

torch and timm are imported inside functions only, and the runtimes in
:mod:`.runtimes`: importing this module (as ``manage.py check`` does through the app
registry) must stay cheap.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import numpy as np

from . import runtimes
from .runtimes import RUNTIMES

__all__ = ["Encoder", "TorchEncoder", "file_digest", "l2_normalize"]

#: Identifies :func:`.preprocessing.crop_to_foreground`'s behaviour in the weights hash; bump
#: it when that function changes what it crops.
FOREGROUND_CROP_VERSION = "fgcrop-v1"


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Scale each row of ``x`` to unit length (rows of zeros stay zero).

    Parameters
    ----------
    x : ndarray, shape (n, dim)

    Returns
    -------
    ndarray of float32, shape (n, dim)
    """
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, eps)


_digest_cache: dict[tuple, str] = {}


def file_digest(path, length: int = 16) -> str:
    """Short SHA-256 hex digest of a file, cached per (path, size, mtime) for the process."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _digest_cache:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _digest_cache[key] = h.hexdigest()
    return _digest_cache[key][:length]


class Encoder:
    """Interface every encoder implements; the rest of the project relies on nothing else.

    Attributes
    ----------
    name : str
        Registry name, e.g. ``"efficientnet_lite0"``.
    dim : int
        Length of the vectors :meth:`embed` returns.
    input_size : int
        Side of the square image the network sees; the shopper-style photos of a
        projection fit are made at this size.
    supports_projection : bool
        Whether the encoder can learn a catalogue projection
        (:mod:`visualsearch.encoders.projection`): it then implements :meth:`raw_embed`,
        :meth:`postprocess_versioned` and :meth:`projection_path`, and :attr:`projection`
        is the one it applies. Callers ask this instead of probing for methods.
    """

    name: str = ""
    dim: int = 0
    input_size: int = 224
    supports_projection: bool = False

    @property
    def projection(self):
        """The catalogue projection :meth:`embed` applies, or ``None`` (always ``None``
        without :attr:`supports_projection`)."""
        return None

    @property
    def weights_hash(self) -> str:
        """Short hex digest identifying everything that determines the embeddings.

        When it changes, previously stored embeddings are stale and must be recomputed.
        """
        raise NotImplementedError

    def embed(self, images) -> np.ndarray:
        """Embed PIL images.

        Parameters
        ----------
        images : list of PIL.Image.Image
            Any size and mode; preprocessing happens inside.

        Returns
        -------
        ndarray of float32, shape (len(images), dim)
            Rows L2-normalised, so that a dot product is a cosine similarity.
        """
        raise NotImplementedError

    def embed_versioned(self, images) -> tuple[np.ndarray, str]:
        """:meth:`embed` and the :attr:`weights_hash` of the weights that made the vectors.

        An encoder whose weights can change while the process runs (a refitted catalogue
        projection) answers both from one snapshot, so that a vector is never stored or
        searched under another version's hash.
        """
        return self.embed(images), self.weights_hash

    # -- the projection capability (supports_projection) --------------------------------------
    def raw_embed(self, images) -> np.ndarray:
        """L2-normalised vectors without the projection: what a projection is fitted on.

        Returns
        -------
        ndarray of float32, shape (len(images), dim)
        """
        raise NotImplementedError(f"Encoder {self.name} does not support a learned projection.")

    def postprocess_versioned(self, features: np.ndarray) -> tuple[np.ndarray, str]:
        """:meth:`raw_embed`'s vectors as :meth:`embed` returns them now, and the
        :attr:`weights_hash` they stand for (one snapshot of the projection)."""
        raise NotImplementedError(f"Encoder {self.name} does not support a learned projection.")

    def projection_path(self) -> Path:
        """Where the encoder's catalogue projection is saved and looked for."""
        raise NotImplementedError(f"Encoder {self.name} does not support a learned projection.")

    def __repr__(self):
        return f"<{type(self).__name__} {self.name!r} dim={self.dim}>"


class TorchEncoder(Encoder):
    """An encoder backed by a torch ``nn.Module`` returning pooled features.

    The module is exported once to ONNX (cached under ``ARTIFACT_DIR``, keyed by
    :meth:`backbone_hash`) and run with OpenVINO, in fp32, or else ONNX Runtime
    (:mod:`.runtimes`). When neither is installed or the export fails, the module runs in
    torch eager mode.

    Subclasses implement :meth:`build_module` and :meth:`backbone_hash`, and set ``mean``,
    ``std`` and ``input_size``.

    Parameters
    ----------
    runtime : {"auto", "openvino", "onnxruntime", "torch"}, optional
        Defaults to ``app_settings.RUNTIME``. ``"auto"`` takes the first of OpenVINO, ONNX
        Runtime and torch that loads.
    artifact_dir : path-like, optional
        Defaults to ``app_settings.ARTIFACT_DIR``; read on first use, not at construction.
    batch_size : int, optional
        Defaults to ``app_settings.BATCH_SIZE``.
    num_threads : int, optional
        Intra-op threads; defaults to ``app_settings.INFERENCE_THREADS``.
    input_size : int, optional
        Side of the square network input; defaults to the class's ``input_size``. Smaller
        inputs make tests fast; production keeps the size the weights were trained at.
    crop_foreground : bool, optional
        Crop images to the product before resizing (default ``True``, see
        :meth:`preprocess`).
    """

    #: Per-channel normalisation applied to pixels scaled to [0, 1].
    mean: tuple = (0.485, 0.456, 0.406)
    std: tuple = (0.229, 0.224, 0.225)
    input_size: int = 224
    #: Bump when preprocessing changes: it changes the embeddings as much as the weights do.
    preprocess_version: str = "resize-bicubic-v1"
    #: Crop every image to its product before resizing (see :meth:`preprocess`).
    crop_foreground: bool = True

    def __init__(
        self,
        *,
        runtime=None,
        artifact_dir=None,
        batch_size=None,
        num_threads=None,
        input_size=None,
        crop_foreground=None,
    ):
        if runtime is not None and runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {RUNTIMES}, got {runtime!r}.")
        self._runtime_choice = runtime
        self._artifact_dir = artifact_dir
        self._batch_size = batch_size
        self._num_threads = num_threads
        if input_size is not None:
            self.input_size = int(input_size)
        if crop_foreground is not None:
            self.crop_foreground = bool(crop_foreground)
        self._lock = threading.Lock()
        self._run = None  # callable: float32 NCHW array -> (n, feature_dim) array
        self.runtime = None  # "openvino", "onnxruntime" or "torch" once loaded

    # -- to implement ------------------------------------------------------------------------
    def build_module(self):
        """Return the torch module (eval mode, weights loaded) mapping NCHW to (n, dim)."""
        raise NotImplementedError

    def backbone_hash(self) -> str:
        """Digest of the module's weights and architecture (not of post-processing)."""
        raise NotImplementedError

    # -- settings, read lazily -----------------------------------------------------------------
    @property
    def artifact_dir(self) -> Path:
        if self._artifact_dir is not None:
            return Path(self._artifact_dir)
        from visualsearch.conf import app_settings

        return Path(app_settings.ARTIFACT_DIR)

    @property
    def batch_size(self) -> int:
        if self._batch_size is not None:
            return int(self._batch_size)
        from visualsearch.conf import app_settings

        return int(app_settings.BATCH_SIZE)

    def _setting(self, attr, explicit):
        if explicit is not None:
            return explicit
        from visualsearch.conf import app_settings

        return getattr(app_settings, attr)

    @property
    def weights_hash(self) -> str:
        crop = f":{FOREGROUND_CROP_VERSION}" if self.crop_foreground else ""
        h = hashlib.sha256(
            f"{self.backbone_hash()}:{self.preprocess_version}{crop}:{self.input_size}".encode()
        )
        return h.hexdigest()[:16]

    # -- preprocessing -------------------------------------------------------------------------
    def preprocess(self, images) -> np.ndarray:
        """Turn PIL images into the normalised float32 NCHW batch the network expects.

        With ``crop_foreground`` (the default) each image is first cropped to the product and
        centred on a square of its backdrop (:func:`.preprocessing.crop_to_foreground`), the
        same for catalogue and query photos, so that framing, padding, distance and the
        backdrop wedges of a tilted photo barely change the embedding. The image is then
        resized to ``input_size`` square (no centre crop, which would cut off e.g. the
        sleeves of a garment), with bicubic resampling as when the ImageNet weights were
        trained.

        Returns
        -------
        ndarray of float32, shape (n, 3, input_size, input_size)
        """
        from .preprocessing import crop_to_foreground, to_batch

        rgb = [im if im.mode == "RGB" else im.convert("RGB") for im in images]
        if self.crop_foreground:
            rgb = [crop_to_foreground(im) for im in rgb]
        return to_batch(rgb, self.input_size, self.mean, self.std)

    # -- inference -----------------------------------------------------------------------------
    def features(self, images) -> np.ndarray:
        """Un-normalised network output for ``images``, batched by ``batch_size``.

        Returns
        -------
        ndarray of float32, shape (len(images), feature_dim)
        """
        self._ensure_loaded()
        n = len(images)
        if n == 0:
            return np.zeros((0, self.feature_dim), dtype=np.float32)
        bs = max(1, self.batch_size)
        out = []
        for start in range(0, n, bs):
            out.append(self._run(self.preprocess(images[start : start + bs])))
        return np.concatenate(out).astype(np.float32, copy=False)

    @property
    def feature_dim(self) -> int:
        """Length of the raw network output (equal to ``dim`` unless post-processing differs)."""
        return self.dim

    def postprocess(self, features: np.ndarray) -> np.ndarray:
        """Map raw features to the final embedding; subclasses add projections here."""
        return l2_normalize(features)

    def postprocess_versioned(self, features: np.ndarray) -> tuple[np.ndarray, str]:
        """:meth:`postprocess` and the weights hash it stands for (see
        :meth:`Encoder.embed_versioned`)."""
        return self.postprocess(features), self.weights_hash

    def embed_versioned(self, images) -> tuple[np.ndarray, str]:
        return self.postprocess_versioned(self.features(list(images)))

    def embed(self, images) -> np.ndarray:
        images = list(images)
        return self.postprocess(self.features(images))

    def _ensure_loaded(self):
        if self._run is not None:
            return
        with self._lock:
            if self._run is None:
                self._load()

    def _load(self):
        runtime = self._setting("RUNTIME", self._runtime_choice)
        threads = int(self._setting("INFERENCE_THREADS", self._num_threads) or os.cpu_count() or 1)
        module = self.build_module()
        self._run, self.runtime = runtimes.load(
            runtime, module, threads, lambda: self._exported(module), self.name
        )

    def onnx_path(self) -> Path:
        return self.artifact_dir / f"{self.name}-{self.backbone_hash()}-{self.input_size}.onnx"

    def _exported(self, module) -> Path:
        path = self.onnx_path()
        if not path.exists():
            runtimes.export_onnx(module, path, self.input_size)
        return path
