"""Image encoders, chosen by name with ``VISUALSEARCH_ENCODER``.

Usage::

    from visualsearch.encoders import get_encoder

    encoder = get_encoder()  # the configured one, loaded once per process
    vectors = encoder.embed(images)  # (n, encoder.dim) float32, L2-normalised

Importing this package imports neither torch nor any model: the registry maps names to dotted
paths, and an encoder loads its network on first use.
"""

from __future__ import annotations

import os
import threading

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from .base import Encoder

__all__ = ["Encoder", "available_encoders", "clear_cache", "get_encoder", "register"]

_REGISTRY = {
    "efficientnet_lite0": "visualsearch.encoders.efficientnet.EfficientNetLite0Encoder",
    "resnet50": "visualsearch.encoders.torchvision_backbones.ResNet50Encoder",
    "mobilenet_v3_large": "visualsearch.encoders.torchvision_backbones.MobileNetV3LargeEncoder",
}
_cache: dict[tuple[str, str], Encoder] = {}
_lock = threading.Lock()


class UnknownEncoder(ImproperlyConfigured, ValueError):
    """Raised for an encoder name that is not registered.

    Both an ``ImproperlyConfigured`` (it usually comes from settings) and a ``ValueError`` (it
    may come from a command-line argument), so callers catch whichever fits.
    """


def _registry() -> dict[str, str]:
    """Built-in encoders plus ``VISUALSEARCH_ENCODERS`` (``{name: dotted path}``), read on
    every call so that settings overrides take effect."""
    from visualsearch.conf import app_settings

    return {**_REGISTRY, **app_settings.ENCODERS}


def available_encoders() -> list[str]:
    """Names accepted by :func:`get_encoder` and ``VISUALSEARCH_ENCODER``, sorted."""
    return sorted(_registry())


def register(name: str, dotted_path: str) -> None:
    """Make an :class:`Encoder` subclass, given by dotted path, available under ``name``."""
    _REGISTRY[name] = dotted_path
    for key in [key for key in _cache if key[0] == name]:
        del _cache[key]


def get_encoder(name: str | None = None) -> Encoder:
    """Return the encoder called ``name`` (default: ``VISUALSEARCH_ENCODER``).

    Instances are cached per process, so the network is loaded only once however many
    requests or tasks embed images.

    Raises
    ------
    UnknownEncoder
        If ``name`` is not registered.
    """
    if name is None:
        from visualsearch.conf import app_settings

        name = app_settings.ENCODER
    registry = _registry()
    if name not in registry:
        raise UnknownEncoder(
            f"Unknown visual-search encoder {name!r}. Available encoders: "
            f"{', '.join(available_encoders())} (check VISUALSEARCH_ENCODER)."
        )
    # Keyed by the dotted path too: a setting may map a name to another class.
    key = (name, registry[name])
    try:
        return _cache[key]
    except KeyError:
        pass
    with _lock:
        if key not in _cache:
            _cache[key] = import_string(registry[name])()
        return _cache[key]


def clear_cache() -> None:
    """Forget cached encoders, e.g. after changing settings in tests."""
    _cache.clear()


def _forget_after_fork() -> None:
    """In a process just forked from one that had encoders (gunicorn's ``--preload``, a
    Celery pool): start afresh. An inference runtime's threads do not survive a fork, and a
    lock held at that moment by another thread of the parent (a warm-up loading the
    network) would stay held in the child for ever; the child loads its own on first use."""
    global _lock
    _cache.clear()
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)
