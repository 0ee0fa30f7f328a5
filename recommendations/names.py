"""The names analysts give blend profiles, experiments and arms.

They are slugs that notebooks, template tags and the API write by hand (``profile=summer``),
so they are lowercase, as their help texts say: ``Summer`` beside ``summer`` would be two
profiles nobody can tell apart. The models' fields are ``SlugField``s, which allow capitals;
their ``clean()`` methods add this rule, with one message for all three.
"""

from django.utils.translation import gettext

__all__ = ["name_error"]


def name_error(name):
    """Why ``name`` cannot be a profile, experiment or arm name, or ``None``."""
    if name and name != name.lower():
        return gettext("Use lowercase letters, digits, hyphens and underscores.")
    return None
