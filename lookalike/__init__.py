"""Lookalike: visual search and personalised recommendations for Django shops.

The distribution installs three importable packages: ``visualsearch`` and
``recommendations`` (the two Django apps a shop adds to ``INSTALLED_APPS``) and this one,
which holds what they share: the catalogue adapter (:mod:`lookalike.catalogue`), the
background-job app (``lookalike.jobs``) and the integrations (``lookalike.contrib``).
"""

__version__ = "0.2.0"
