"""Moved to :mod:`recommendations.offline.simulation`; importable here for code written
before."""

from ..offline.simulation import *  # noqa: F403
from ..offline.simulation import __all__  # noqa: F401
