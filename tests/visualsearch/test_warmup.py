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
