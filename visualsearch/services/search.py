"""Moved to :mod:`visualsearch.search`; importable here for code written before."""

from ..search import *  # noqa: F403
from ..search import __all__  # noqa: F401
