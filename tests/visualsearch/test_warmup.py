import importlib
import logging
import sys

import pytest

from visualsearch import warmup


def test_warm_up_runs_a_photo_through_the_configured_encoder(pixel_encoder):
    before = pixel_encoder.calls
    seconds = warmup.warm_up()
    assert pixel_encoder.calls == before + 1  # every view of the photo in one batch
    assert 0 <= seconds < 60


def test_a_failed_warm_up_is_logged_not_raised(settings, caplog):
    settings.VISUALSEARCH_ENCODER = "no-such-encoder"
    with caplog.at_level(logging.ERROR, logger="visualsearch.warmup"):
        thread = warmup.warm_up_in_background()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert "Photo search could not be warmed up." in caplog.text
    assert "no-such-encoder" in caplog.text  # the traceback says why


@pytest.mark.parametrize("switch, started", [(None, 1), ("0", 0)])
def test_the_shops_web_processes_warm_up_as_they_start(monkeypatch, switch, started):
    calls = []
    monkeypatch.setattr(warmup, "warm_up_in_background", lambda: calls.append(1))
    if switch is None:
        monkeypatch.delenv("LOOKALIKE_WARM_UP", raising=False)
    else:
        monkeypatch.setenv("LOOKALIKE_WARM_UP", switch)
    monkeypatch.delitem(sys.modules, "config.wsgi", raising=False)
    importlib.import_module("config.wsgi")
    assert len(calls) == started


def test_a_forked_process_loads_its_own_encoder_even_while_the_parent_loads_one(pixel_encoder):
    """gunicorn's --preload forks the workers while the master's warm-up may hold the
    registry's lock: the child must neither inherit the parent's encoder (its runtime's
    threads do not survive a fork) nor wait on that lock for ever."""
    import os
    import signal

    from visualsearch import encoders

    held = encoders._lock
    held.acquire()  # as a warm-up thread of the parent would, mid-load
    try:
        pid = os.fork()
        if pid == 0:  # the child: exit 0 if it loads its own encoder within 10 s
            signal.alarm(10)
            try:
                fresh = encoders.get_encoder("pixel")
                os._exit(0 if fresh is not pixel_encoder and encoders._lock is not held else 3)
            except BaseException:
                os._exit(4)
        _, status = os.waitpid(pid, 0)
    finally:
        held.release()
    assert os.waitstatus_to_exitcode(status) == 0
    assert encoders.get_encoder("pixel") is pixel_encoder  # the parent keeps its own
