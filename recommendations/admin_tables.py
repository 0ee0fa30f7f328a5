"""How the admin shows what is stored as JSON (a model's parameters and held-out figures,
a profile's offline figures): names in words, values rounded, rows in a table, rather than
the raw document with its float noise."""

import math
import re

from django.utils.formats import number_format
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext, pgettext
from django.utils.translation import gettext_lazy as _

__all__ = ["LABELS", "label", "model_against_popularity", "paragraphs", "plain", "table"]

#: Words for the keys of a model's parameters and figures and of a profile's published
#: figures (notebook 02), and for the values that are codes (others are shown as stored).
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
    "skipped": _("Not evaluated"),
    "hit_rate": _("Hit rate"),
    "diversity": _("Category diversity"),
    "diversity_method": _("Diversity re-ranking"),
    "candidates": _("Weightings tried"),
    "evaluation": _("Evaluation split"),
    "previous_default": _("Default profile at the time"),
    "profile": _("Profile"),
    "segments": _("NDCG by segment"),
    "cutoff": _("Held out from"),
    "users": _("Shoppers"),
    "items": _("Products"),
    # Sources and segments of the offline evaluation.
    "model": _("Model"),
    "popularity": _("Popularity"),
    "blend": _("Blend"),
    "visual_only": _("Visual similarity alone"),
    "als_only": _("ALS alone"),
    "popularity_only": _("Popularity alone"),
    "covisitation_only": _("Co-visitation alone"),
    "all": _("All shoppers"),
    "cold_items": _("New products"),
    "new_shoppers": _("New shoppers"),
    "regulars": _("Regular shoppers"),
    # Event kinds (a model's event weights).
    "view": _("View"),
    "similar_click": _("Similar-item click"),
    "cart": _("Add to cart"),
    "purchase": _("Purchase"),
    # Values.
    "per-user random 75/25 holdout": _("per-user random 75/25 holdout"),
    "none": _("none"),
    "mmr": _("maximal marginal relevance"),
    "category_cap": _("category cap"),
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
    return LABELS.get(key, key) if isinstance(key, str) else key


def plain(value):
    """A stored value as a reader wants it, in the active language's number format: floats
    to three decimals (two significant digits below 0.01, where three decimals would say
    0.002 of a coverage of 0.0022), yes or no, codes in words, mappings as ``name: value``
    pairs (nested ones in brackets)."""
    if isinstance(value, bool):
        return gettext("Yes") if value else gettext("No")
    if isinstance(value, float):
        places = 3
        if value and abs(value) < 0.01:
            places = 1 - math.floor(math.log10(abs(value)))  # two significant digits
        return number_format(round(value, places), decimal_pos=places)
    if isinstance(value, dict):
        # "; " between pairs: a comma may be the decimal mark (0,5).
        return "; ".join(
            gettext("%(name)s: %(value)s") % {"name": label(k), "value": _nested(v)}
            for k, v in sorted(value.items())
        )
    if isinstance(value, str):
        return str(label(value))
    return "—" if value is None else str(value)


def _nested(value):
    return f"({plain(value)})" if isinstance(value, dict) else plain(value)


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


def model_against_popularity(row, metric):
    """A recommender model's held-out ``metric`` at its k against popularity's, "0.100 /
    0.007", for the models' list."""
    evaluation = row.evaluation or {}
    key = f"{metric}_at_{evaluation.get('k', 10)}"

    def figure(source):
        value = (evaluation.get(source) or {}).get(key)
        return "—" if value is None else number_format(round(value, 3), decimal_pos=3)

    return pgettext("the model's figure against popularity's", "%(model)s / %(popularity)s") % {
        "model": figure("model"),
        "popularity": figure("popularity"),
    }
