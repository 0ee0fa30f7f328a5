"""lookalike.blas: one BLAS thread while a request's numerical work runs, restored after,
and one limit shared by nested and concurrent callers.

OpenBLAS keeps what one thread set apart from what others read in ways that depend on its
version and on who set a limit first, so the counting is tested on a recording controller
and the real limit in the main thread alone."""

import threading

import numpy as np
import pytest
from threadpoolctl import ThreadpoolController

from lookalike import blas
from lookalike.blas import single_thread, single_threaded


def blas_threads():
    libs = ThreadpoolController().select(user_api="blas")
    return {lib.num_threads for lib in libs.lib_controllers}


class Recording:
    """Stands for threadpoolctl's controller: the limit in force, as BLAS would hold it."""

    def __init__(self):
        self.threads, self.calls = 2, []

    def limit(self, limits, user_api):
        assert (limits, user_api) == (1, "blas")
        before, self.threads = self.threads, 1
        self.calls.append("limit")
        recording = self

        class Limiter:
            def restore_original_limits(self):
                recording.threads = before
                recording.calls.append("restore")

        return Limiter()


@pytest.fixture
def recording(monkeypatch):
    controller = Recording()
    monkeypatch.setattr(blas, "_controller", controller)
    return controller


def test_the_real_limit_holds_inside_and_is_restored():
    blas._get_controller()  # scipy's BLAS loaded, as in a serving process
    before = blas_threads()
    with single_thread():
        assert blas_threads() == {1}
    assert blas_threads() == before


def test_nested_blocks_restore_once_at_the_end(recording):
    with single_thread():
        with single_thread():
            assert recording.threads == 1
        # The inner block's exit must not restore while the outer one still runs.
        assert recording.threads == 1
    assert recording.threads == 2 and recording.calls == ["limit", "restore"]


def test_concurrent_callers_share_one_limit(recording):
    """A request thread that leaves first does not give the other its threads back."""
    first_in, second_in, first_out, done = (threading.Event() for _ in range(4))
    seen = []

    def first():
        with single_thread():
            first_in.set()
            second_in.wait(10)
        first_out.set()

    def second():
        first_in.wait(10)
        with single_thread():
            second_in.set()
            first_out.wait(10)
            seen.append(recording.threads)
            done.wait(10)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    assert first_out.wait(10)
    done.set()
    for t in threads:
        t.join(20)
    assert seen == [1]
    assert recording.threads == 2 and recording.calls == ["limit", "restore"]


def test_decorator_keeps_the_result_and_restores_on_error(recording):
    @single_threaded
    def product(a):
        assert recording.threads == 1
        return a @ a.T

    a = np.arange(6, dtype=np.float64).reshape(2, 3)
    np.testing.assert_array_equal(product(a), a @ a.T)

    @single_threaded
    def fails():
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        fails()
    assert recording.threads == 2
    assert recording.calls == ["limit", "restore", "limit", "restore"]


def test_the_widgets_and_photo_search_run_single_threaded(recording):
    from recommendations.blending import blend
    from visualsearch.search import service

    for func in (blend.blend_similar, blend.recommend_for_user, service.search_photos):
        assert func.__wrapped__.__module__ == func.__module__
