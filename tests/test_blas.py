"""lookalike.blas: one BLAS thread while a request's numerical work runs, restored after,
and shared correctly by concurrent and nested callers."""

import threading

import numpy as np
import pytest
from threadpoolctl import ThreadpoolController

from lookalike.blas import single_thread, single_threaded


def blas_threads():
    blas = ThreadpoolController().select(user_api="blas")
    return {lib.num_threads for lib in blas.lib_controllers}


def in_a_thread(func):
    """Run ``func`` in another thread: OpenBLAS keeps a limit set from the main thread
    apart from the limits its other threads set, as a web server's request threads would."""
    result = []
    thread = threading.Thread(target=lambda: result.append(func()))
    thread.start()
    thread.join()
    return result[0]


@pytest.fixture
def two_threads():
    """Every BLAS at two threads for the test, whatever the machine has."""
    limiter = in_a_thread(lambda: ThreadpoolController().limit(limits=2, user_api="blas"))
    assert blas_threads() == {2}
    yield
    in_a_thread(limiter.restore_original_limits)


def test_limits_then_restores(two_threads):
    def nested():
        with single_thread():
            assert blas_threads() == {1}
            with single_thread():
                assert blas_threads() == {1}
            # The inner block's exit must not restore while the outer one still runs.
            assert blas_threads() == {1}
        return blas_threads()

    # In a thread, as a threaded server's requests run (every test here does: OpenBLAS
    # keeps what the main thread set apart).
    assert in_a_thread(nested) == {2}


def test_concurrent_callers_share_one_limit(two_threads):
    """A request thread that leaves first does not give the other its threads back."""
    first_in, second_in, first_out, done = (threading.Event() for _ in range(4))

    def first():
        with single_thread():
            first_in.set()
            assert second_in.wait(10)
        first_out.set()

    def second():
        assert first_in.wait(10)
        with single_thread():
            second_in.set()
            assert done.wait(10)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    try:
        assert first_out.wait(10)
        assert blas_threads() == {1}
    finally:
        done.set()
        for t in threads:
            t.join(20)
    assert blas_threads() == {2}


def test_decorator_keeps_the_result_and_restores_on_error(two_threads):
    @single_threaded
    def product(a):
        assert blas_threads() == {1}
        return a @ a.T

    a = np.arange(6, dtype=np.float64).reshape(2, 3)
    np.testing.assert_array_equal(in_a_thread(lambda: product(a)), a @ a.T)

    @single_threaded
    def fails():
        raise ValueError("boom")

    def call():
        with pytest.raises(ValueError, match="boom"):
            fails()
        return blas_threads()

    assert in_a_thread(call) == {2}


def test_the_widgets_and_photo_search_run_single_threaded():
    from recommendations.blending import blend
    from visualsearch.search import service

    for func in (blend.blend_similar, blend.recommend_for_user, service.search_photos):
        assert func.__wrapped__.__module__ == func.__module__
