"""The encoder interface and the machinery shared by the torch-based encoders.

An encoder turns product photos into L2-normalised vectors whose dot product (cosine
similarity) ranks visually similar products. Everything that decides what a vector means --
weights, preprocessing, pooling, a learned projection -- lives inside the encoder and is
summarised by :attr:`Encoder.weights_hash`, so that stored embeddings can be recognised as stale
when any of it changes.

torch, timm, OpenVINO and onnxruntime are imported inside functions only: importing this
module (as ``manage.py check`` does through the app registry) must stay cheap.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["Encoder", "TorchEncoder", "file_digest", "l2_normalize"]

#: Identifies :func:`.preprocessing.crop_to_foreground`'s behaviour in the weights hash; bump
#: it when that function changes what it crops.
FOREGROUND_CROP_VERSION = "fgcrop-v1"

#: Runtimes a :class:`TorchEncoder` can execute on.
RUNTIMES = ("auto", "openvino", "onnxruntime", "torch")
#: What ``"auto"`` tries, fastest first (see ``bench/embed_throughput.py``).
AUTO_ORDER = ("openvino", "onnxruntime", "torch")


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
    """

    name: str = ""
    dim: int = 0

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

    def __repr__(self):
        return f"<{type(self).__name__} {self.name!r} dim={self.dim}>"


class TorchEncoder(Encoder):
    """An encoder backed by a torch ``nn.Module`` returning pooled features.

    The module is exported once to ONNX (cached under ``ARTIFACT_DIR``, keyed by
    :meth:`backbone_hash`) and run with OpenVINO, in fp32, or else ONNX Runtime: on these
    2-core CPUs OpenVINO measured about 4x and ONNX Runtime about 2.5x the speed of torch
    eager, with the same features (cosine 1.000, see ``bench/embed_throughput.py``). When
    neither is installed or the export fails, the module runs in torch eager mode.

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
        candidates = AUTO_ORDER if runtime == "auto" else (runtime,)
        runners = {
            "openvino": self._openvino_runner,
            "onnxruntime": self._onnx_runner,
            "torch": self._torch_runner,
        }
        for name in candidates:
            try:
                self._run = runners[name](module, threads)
            except ImportError as exc:
                if runtime != "auto":
                    raise
                logger.info("%s unavailable (%s); trying the next runtime.", name, exc)
            except Exception:
                if runtime != "auto" or name == "torch":
                    raise
                logger.exception("%s failed to load %s; trying the next runtime.", name, self.name)
            else:
                self.runtime = name
                return

    def _torch_runner(self, module, threads):
        import torch

        # Only raise the thread count: lowering it would slow the rest of the process.
        if torch.get_num_threads() < threads:
            torch.set_num_threads(threads)
        # channels_last measured 1.6x faster for the depthwise convolutions on CPU.
        module = module.to(memory_format=torch.channels_last)

        def run(batch: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                x = torch.from_numpy(batch).contiguous(memory_format=torch.channels_last)
                return module(x).float().numpy()

        return run

    def onnx_path(self) -> Path:
        return self.artifact_dir / f"{self.name}-{self.backbone_hash()}-{self.input_size}.onnx"

    def _exported(self, module) -> Path:
        path = self.onnx_path()
        if not path.exists():
            export_onnx(module, path, self.input_size)
        return path

    def _openvino_runner(self, module, threads):
        """Run the ONNX export with OpenVINO's CPU plugin, in fp32.

        The precision is pinned: on CPUs with bf16 support OpenVINO would otherwise pick bf16,
        whose features drift from torch's. With the throughput hint OpenVINO runs one stream
        per core pair or core; a batch is split into that many parts inferred concurrently,
        which measured about 10% faster on 2 cores than one two-thread request. Infer
        requests are not thread-safe, so each thread (a threaded web server embeds uploads
        concurrently) gets its own queue of them.
        """
        import openvino as ov

        core = ov.Core()
        compiled = core.compile_model(
            core.read_model(str(self._exported(module))),
            "CPU",
            {
                "INFERENCE_NUM_THREADS": threads,
                "INFERENCE_PRECISION_HINT": "f32",
                "PERFORMANCE_HINT": "THROUGHPUT",
            },
        )
        n_requests = max(1, int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        local = threading.local()

        def new_queue():
            outputs = {}

            def collect(request, index):
                # Called on OpenVINO's thread; output tensors are reused by the next
                # inference, so copy them out.
                outputs[index] = np.array(request.get_output_tensor(0).data, copy=True)

            queue = ov.AsyncInferQueue(compiled, n_requests)
            queue.set_callback(collect)
            return queue, outputs

        def run(batch: np.ndarray) -> np.ndarray:
            if not hasattr(local, "queue"):
                local.queue, local.outputs = new_queue()
            queue, outputs = local.queue, local.outputs
            parts = np.array_split(np.ascontiguousarray(batch, dtype=np.float32), n_requests)
            parts = [p for p in parts if len(p)]
            outputs.clear()
            for index, part in enumerate(parts):
                queue.start_async({0: part}, index)
            queue.wait_all()
            return np.concatenate([outputs.pop(i) for i in range(len(parts))])

        return run

    def _onnx_runner(self, module, threads):
        import onnxruntime as ort

        path = self._exported(module)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle worker threads would otherwise spin for a while after every run, taking CPU
        # from the web process, the database and any other runtime in the process.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        input_name = session.get_inputs()[0].name

        def run(batch: np.ndarray) -> np.ndarray:
            return session.run(None, {input_name: batch})[0]

        return run


def export_onnx(module, path, input_size: int = 224):
    """Export ``module`` (NCHW float32 -> (n, dim)) to ONNX with a dynamic batch axis.

    Written to a temporary file in the destination folder and moved into place with
    :func:`os.replace`, so concurrent workers never load a half-written model.

    The TorchScript-based exporter (``dynamo=False``) is used: the dynamo exporter, the
    default in recent torch, needs ``onnxscript``, which this project does not install.
    """
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(2, 3, input_size, input_size)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with torch.inference_mode(), warnings.catch_warnings():
            # The TorchScript exporter is deprecated but is the one that works without
            # onnxscript; the warning would only alarm operators.
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                module.to(memory_format=torch.contiguous_format),
                (example,),
                tmp,
                input_names=["images"],
                output_names=["features"],
                dynamic_axes={"images": {0: "batch"}, "features": {0: "batch"}},
                opset_version=17,
                dynamo=False,
            )
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    logger.info("Exported %s to %s", type(module).__name__, path)
    return path
