"""What the blend reads from the active model's artefact beside its factors (the cold-start
map, the co-visitation table), loaded once per artefact and process.

Each is fitted when the model is trained and stored in the same ``.npz``, so that a model
and its extras are always activated together. A model may also carry its own copy (the
offline evaluation fits them in memory and never writes an artefact).
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from ..conf import app_settings

__all__ = ["ArtefactPart", "read_part"]


def read_part(path, from_arrays):
    """``from_arrays(arrays)`` of the artefact at ``path`` (relative to
    ``RECOMMENDATIONS_ARTIFACT_DIR`` unless absolute): ``None`` when it holds no such part."""
    path = Path(path)
    if not path.is_absolute():
        path = app_settings.ARTIFACT_DIR / path
    with np.load(path, allow_pickle=False) as npz:
        return from_arrays(npz)


class ArtefactPart:
    """One kind of extra: the copy a model carries in ``attribute``, else the one stored in
    its artefact (``from_arrays`` builds it from the ``.npz``), read once per artefact."""

    def __init__(self, attribute, from_arrays):
        self.attribute = attribute
        self.from_arrays = from_arrays
        self.lock = threading.Lock()
        self.path = None
        self.value = None

    def of(self, model):
        """The part of an :class:`~recommendations.services.serving.ActiveModel`, or
        ``None`` when it has none (a model trained before such parts were stored, an
        unreadable artefact: served without it)."""
        if model is None:
            return None
        carried = getattr(model, self.attribute, None)
        if carried is not None:
            return carried
        path = getattr(model, "artifact_path", "") or ""
        if not path:
            return None
        with self.lock:
            if self.path != path:
                try:
                    self.value = read_part(path, self.from_arrays)
                except (OSError, ValueError, KeyError):
                    self.value = None
                self.path = path
            return self.value
