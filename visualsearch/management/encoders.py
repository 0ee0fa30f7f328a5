"""The encoder a management command names, or a one-line error for the command line."""

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError

from ..encoders import UnknownEncoder, get_encoder


def command_encoder(name=None):
    """The encoder ``name`` (the configured one for ``None``) with its weights found, or a
    :class:`CommandError` saying why not: an unknown name, or weights that are not on this
    machine (found only when first needed, which would otherwise be a traceback midway)."""
    try:
        encoder = get_encoder(name)
        encoder.weights_hash  # noqa: B018 - reads the weights file, or says it is missing
    except (UnknownEncoder, ImproperlyConfigured) as exc:
        raise CommandError(str(exc)) from exc
    return encoder
