"""One BLAS thread for the numerical work of a request, and for implicit's ALS.

A request's matrices are small (a few hundred candidates by 1280 dimensions), and a web
server runs one request per worker thread or process: OpenBLAS's own thread pool only adds
hand-offs, and on a busy machine its threads spin for cores the other requests hold. On the
2-core machine the project is measured on, under load, MMR's 60 x 1280 similarity took
23.5 ms with OpenBLAS's default two threads and 1.3 ms with one. implicit runs its own
threads and warns when BLAS runs more on top of them, so training uses the same limit.

:func:`single_thread` limits every BLAS the process loaded (numpy's and scipy's, which
implicit uses) for the duration of a call. Limits are process-wide in BLAS, so nested and
concurrent callers share one limit, counted under a lock: the first to enter sets one
thread and the last to leave restores what was there; a thread that threadpoolctl would
otherwise let restore two threads in the middle of another request's work cannot.
"""

from __future__ import annotations

import functools
import threading
from contextlib import contextmanager

__all__ = ["single_thread", "single_threaded"]

_lock = threading.Lock()
_controller = None
_depth = 0
_limiter = None


def _get_controller():
    """threadpoolctl's view of the loaded BLAS libraries; inspecting them costs
    milliseconds, so once per process."""
    global _controller
    if _controller is None:
        # threadpoolctl only limits libraries already loaded: scipy's BLAS (the one implicit
        # calls) loads with scipy.linalg, numpy's with numpy.
        import scipy.linalg  # noqa: F401
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController()
    return _controller


@contextmanager
def single_thread():
    """Run the block with one BLAS thread (see the module docstring)."""
    global _depth, _limiter
    with _lock:
        if _depth == 0:
            _limiter = _get_controller().limit(limits=1, user_api="blas")
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _limiter.restore_original_limits()
                _limiter = None


def single_threaded(func):
    """Decorate ``func`` to run in :func:`single_thread`."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with single_thread():
            return func(*args, **kwargs)

    return wrapper
