"""Moved to :mod:`recommendations.offline.blend_evaluation`; importable here for code
written before."""

from ..offline.blend_evaluation import *  # noqa: F403
from ..offline.blend_evaluation import __all__  # noqa: F401
