"""Where a torch encoder's network runs: OpenVINO, ONNX Runtime or torch eager.

A :class:`~.base.TorchEncoder` builds its torch module and hands it to :func:`load`, which
returns a ``run(batch) -> features`` callable for the chosen runtime. OpenVINO and ONNX
Runtime run an ONNX export of the module (:func:`export_onnx`, cached by the encoder);
on these 2-core CPUs OpenVINO measured about 4x and ONNX Runtime about 2.5x the speed of
torch eager, with the same features (cosine 1.000, see ``bench/embed_throughput.py``).

Every runtime is imported inside the function that needs it: importing this module (as
``manage.py check`` does through the app registry) imports none of them.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["AUTO_ORDER", "RUNTIMES", "export_onnx", "import_openvino", "load"]

#: Runtimes a :class:`~.base.TorchEncoder` can execute on.
RUNTIMES = ("auto", "openvino", "onnxruntime", "torch")
#: What ``"auto"`` tries, fastest first (see ``bench/embed_throughput.py``).
AUTO_ORDER = ("openvino", "onnxruntime", "torch")


def load(runtime, module, threads, exported, name=""):
    """``(run, runtime)``: a callable mapping a float32 NCHW batch to ``(n, features)`` and
    the runtime that loaded.

    Parameters
    ----------
    runtime : {"auto", "openvino", "onnxruntime", "torch"}
        ``"auto"`` takes the first of :data:`AUTO_ORDER` that loads; an explicit runtime
        that fails raises.
    module : torch.nn.Module
        In eval mode.
    threads : int
        Intra-op threads.
    exported : callable
        Returns the path of the module's ONNX export, making it on first call; called only
        by the runtimes that need it, after they were imported.
    name : str
        The encoder's name, for the log.
    """
    runners = {
        "openvino": lambda: openvino_runner(exported, threads),
        "onnxruntime": lambda: onnxruntime_runner(exported, threads),
        "torch": lambda: torch_runner(module, threads),
    }
    for candidate in AUTO_ORDER if runtime == "auto" else (runtime,):
        try:
            return runners[candidate](), candidate
        except ImportError as exc:
            if runtime != "auto":
                raise
            logger.info("%s unavailable (%s); trying the next runtime.", candidate, exc)
        except Exception:
            if runtime != "auto" or candidate == "torch":
                raise
            logger.exception("%s failed to load %s; trying the next runtime.", candidate, name)
    return None, None


def torch_runner(module, threads):
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


def import_openvino():
    """``openvino``, imported without its usage telemetry (unless
    ``VISUALSEARCH_OPENVINO_TELEMETRY`` allows it).

    Importing ``openvino`` sets up its model converter's telemetry, which by default sends
    an event to Google Analytics from a process it forks off a helper thread. A shop's
    servers should not report to a third party unasked, and a fork made while other
    threads run is unsafe: in the development server under load it hung the process for
    good (OpenBLAS's fork handler waited for a matrix product whose thread waited for the
    interpreter lock the forking thread held), and every later request timed out. With
    ``openvino_telemetry`` unimportable, the converter uses the no-op stand-in it ships for
    installations without that package. A process that imported ``openvino`` before this
    keeps what that import did.
    """
    from ..conf import app_settings

    if not app_settings.OPENVINO_TELEMETRY and "openvino" not in sys.modules:
        # None in sys.modules makes `import openvino_telemetry` raise ImportError.
        sys.modules.setdefault("openvino_telemetry", None)
    import openvino

    return openvino


def openvino_runner(exported, threads):
    """Run the ONNX export with OpenVINO's CPU plugin, in fp32.

    The precision is pinned: on CPUs with bf16 support OpenVINO would otherwise pick bf16,
    whose features drift from torch's. With the throughput hint OpenVINO runs one stream
    per core pair or core; a batch is split into that many parts inferred concurrently,
    which measured about 10% faster on 2 cores than one two-thread request. Infer
    requests are not thread-safe, so each thread (a threaded web server embeds uploads
    concurrently) gets its own queue of them.
    """
    ov = import_openvino()
    core = ov.Core()
    compiled = core.compile_model(
        core.read_model(str(exported())),
        "CPU",
        {
            "INFERENCE_NUM_THREADS": threads,
            "INFERENCE_PRECISION_HINT": "f32",
            "PERFORMANCE_HINT": "THROUGHPUT",
        },
    )
    n_requests = max(1, int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
    local = threading.local()
    # The first ``Tensor.data`` of a process initialises a C++ static of OpenVINO's Python
    # bindings (their numpy dtypes) whose initialiser releases the GIL and takes it back.
    # Two threads' queues whose callbacks read their first outputs at the same moment
    # deadlocked there, one holding the GIL while it waited for the static, the other
    # holding the static while it waited for the GIL: a stack dump of the development
    # server, which then answered no request at all, showed exactly that. Read once here,
    # by the single thread that compiles the model, before any queue exists.
    _ = ov.Tensor(np.zeros(1, dtype=np.float32)).data

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


def onnxruntime_runner(exported, threads):
    import onnxruntime as ort

    path = exported()
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
