"""How the admin shows what is stored as JSON (a model's parameters and held-out figures,
a profile's offline figures): names in words, values rounded, rows in a table, rather than
the raw document with its float noise."""

import math
import re

from django.utils.formats import number_format
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

__all__ = ["LABELS", "label", "paragraphs", "plain", "table"]

#: Words for the keys of a model's parameters and figures (others are shown as stored).
LABELS = {
    "factors": _("Latent factors"),
    "iterations": _("Iterations"),
    "regularization": _("Regularisation"),
    "alpha": _("Confidence scaling (alpha)"),
    "event_weights": _("Event weights"),
    "half_life_days": _("Half-life of events (days)"),
    "include_simulated": _("Simulated shoppers included"),
    "days": _("Days of events (empty: all)"),
    "seed": _("Random seed"),
    "coverage": _("Catalogue coverage"),
    "protocol": _("Protocol"),
    "test_users": _("Shoppers evaluated"),
    "k": _("List length (k)"),
}
_AT_K = re.compile(r"^(precision|recall|ndcg|map)_at_(\d+)$")
_AT_K_NAMES = {
    "precision": _("Precision"),
    "recall": _("Recall"),
    "ndcg": _("NDCG"),
    "map": _("MAP"),
}


def label(key):
    """``ndcg_at_10`` as "NDCG@10", a known key in words, any other as it is stored."""
    match = _AT_K.match(str(key))
    if match:
        return gettext("%(metric)s@%(k)s") % {
            "metric": _AT_K_NAMES[match.group(1)],
            "k": match.group(2),
        }
    return LABELS.get(key, key)


def plain(value):
    """A stored value as a reader wants it, in the active language's number format: floats
    to three decimals (two significant digits below 0.01, where three decimals would say
    0.002 of a coverage of 0.0022), mappings as ``key: value`` pairs."""
    if isinstance(value, float):
        places = 3
        if value and abs(value) < 0.01:
            places = 1 - math.floor(math.log10(abs(value)))  # two significant digits
        return number_format(round(value, places), decimal_pos=places)
    if isinstance(value, dict):
        # "; " between pairs: a comma may be the decimal mark (0,5).
        return "; ".join(f"{k}: {plain(v)}" for k, v in sorted(value.items()))
    return "—" if value is None else str(value)


def paragraphs(items):
    """``(key, value)`` pairs as paragraphs of "name: value" (escaped)."""
    return format_html_join(
        "",
        "<p>{}</p>",
        (
            (gettext("%(name)s: %(value)s") % {"name": label(k), "value": plain(v)},)
            for k, v in items
        ),
    )


def table(header, rows):
    """An HTML table of ``rows`` under ``header`` (every cell escaped); "—" for no rows."""
    if not rows:
        return "—"
    head = format_html_join("", "<th scope='col'>{}</th>", ((h,) for h in header))
    body = format_html_join(
        "",
        "<tr>{}</tr>",
        ((format_html_join("", "<td>{}</td>", ((cell,) for cell in row)),) for row in rows),
    )
    return format_html("<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>", head, body)
