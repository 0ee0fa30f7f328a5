"""Moved to :mod:`recommendations.blending` (the vocabulary and arithmetic in
:mod:`~recommendations.blending.core`, the widgets' blends in
:mod:`~recommendations.blending.blend`); importable here for code written before."""

from ..blending.blend import *  # noqa: F403
from ..blending.core import *  # noqa: F403
