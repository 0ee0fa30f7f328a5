"""Experiments between blend profiles on real shoppers.

Read top to bottom: :mod:`.assignment` (which arm a shopper gets, a pure hash),
:mod:`.services` (creating, starting and stopping experiments), :mod:`.widgets` (the hook
the widget template tags call), :mod:`.recording` (impressions and what followed them),
:mod:`.stats` (intervals and tests, pure), :mod:`.report` (the figures per arm and their
chart), :mod:`.simulate` (simulated shoppers against a live experiment) and :mod:`.admin`.

This package imports nothing at import time, so that :mod:`recommendations.events` can
import :mod:`.recording` without pulling in the blend.
"""
