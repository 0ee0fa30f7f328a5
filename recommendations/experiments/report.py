"""The figures of an experiment per arm, and their chart.

For each arm: the strips shown (distinct recommendation ids) and products shown, the
strips with at least one click, add to cart or purchase attributed to them
(:mod:`.recording`), the click-through rate (clicked strips / strips) and the conversion
rate (strips followed by a purchase / strips), each with its 95% Wilson interval, and the
comparison of each arm with the control under the stopping rule of :mod:`.stats`. A rate
counts strips, so one shopper's many clicks on one strip count once; its interval and
test count shoppers, the unit assigned to arms (:mod:`.stats`, The unit), each shopper's
strips read together.
"""

from __future__ import annotations

from django.db.models import Case, CharField, Count, Q, Value, When
from django.db.models.functions import Cast, Concat
from django.utils.formats import number_format
from django.utils.html import escape
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from ..models import Impression, ImpressionOutcome
from .stats import SAMPLE_RATIO_P, compare, effective_count, sample_ratio_test, wilson_interval

__all__ = ["VERDICTS", "experiment_report", "report_chart_svg", "strip_outcomes"]

VERDICTS = {
    "better": _("better than the control"),
    "worse": _("worse than the control"),
    "collecting": _("keep collecting"),
    "no-difference": _("no difference detected"),
    "control": _("control"),
}

RATES = {"ctr": "clicked", "conversion": "purchased"}


def _rows(experiment, simulated):
    """The experiment's impressions and their outcomes, simulated, real or all (``None``)."""
    impressions = Impression.objects.filter(experiment=experiment)
    outcomes = ImpressionOutcome.objects.filter(impression__experiment=experiment)
    if simulated is not None:
        impressions = impressions.filter(simulated=simulated)
        outcomes = outcomes.filter(impression__simulated=simulated)
    return impressions, outcomes


def _counts(experiment, simulated):
    impressions, outcomes = _rows(experiment, simulated)
    shown = {
        row["arm"]: row
        for row in impressions.values("arm").annotate(
            strips=Count("recommendation_id", distinct=True),
            simulated_strips=Count("recommendation_id", distinct=True, filter=Q(simulated=True)),
            products=Count("id"),
            # A shopper is a user, or an anonymous session (assignment keys).
            shoppers=Count("user", distinct=True)
            + Count("session_key", distinct=True, filter=Q(user__isnull=True)),
        )
    }
    followed = {}
    for row in outcomes.values("impression__arm", "kind").annotate(
        strips=Count("impression__recommendation_id", distinct=True)
    ):
        followed[(row["impression__arm"], row["kind"])] = row["strips"]
    return shown, followed


def _shopper(prefix=""):
    """An expression naming the impression's shopper: its user, else its session."""
    return Case(
        When(
            **{f"{prefix}user__isnull": False},
            then=Concat(Value("u:"), Cast(f"{prefix}user_id", output_field=CharField())),
        ),
        default=Concat(Value("s:"), f"{prefix}session_key"),
        output_field=CharField(),
    )


def _per_shopper(experiment, simulated):
    """``{(arm id, rate key): [(successes, strips) per shopper]}``, every shopper of the
    arm listed for each rate (with 0 successes where none)."""
    impressions, outcomes = _rows(experiment, simulated)
    strips = impressions.annotate(shopper=_shopper()).values("arm", "shopper")
    strips = strips.annotate(n=Count("recommendation_id", distinct=True))
    kinds = {kind: key for kind, key in (("click", "clicked"), ("purchase", "purchased"))}
    done = outcomes.filter(kind__in=kinds).annotate(shopper=_shopper("impression__"))
    done = done.values("impression__arm", "shopper", "kind")
    succeeded = {
        (row["impression__arm"], row["shopper"], kinds[row["kind"]]): row["n"]
        for row in done.annotate(n=Count("impression__recommendation_id", distinct=True))
    }
    lists = {}
    for row in strips:
        for key in kinds.values():
            pair = (succeeded.get((row["arm"], row["shopper"], key), 0), row["n"])
            lists.setdefault((row["arm"], key), []).append(pair)
    return lists


def _rate(successes, n, shoppers=()):
    """The rate and its Wilson interval, over as many strips as ``shoppers`` are worth
    (:func:`.stats.effective_count`)."""
    low, high = (
        wilson_interval(*effective_count(shoppers)) if shoppers else wilson_interval(successes, n)
    )
    return {"value": successes / n if n else 0.0, "low": low, "high": high}


def experiment_report(experiment, simulated=None):
    """The figures of ``experiment`` (module docstring) as plain data.

    Parameters
    ----------
    simulated : bool or None
        Only simulated impressions (True), only real ones (False) or all (None).

    Returns
    -------
    dict
        ``experiment``, ``status``, ``planned`` (strips per arm), ``alpha``, ``arms`` (a
        list, the control first, each with ``strips`` (``simulated_strips`` of them shown to
        simulated shoppers), ``products``, ``clicked``,
        ``carted``, ``purchased``, ``shoppers``, ``ctr`` and ``conversion`` as
        ``{value, low, high}``
        and, for the other arms, ``vs_control`` per rate: ``difference``, ``z``,
        ``p_value``, ``threshold``, ``verdict``) and ``leader``: the arm better than the
        control on click-through under the stopping rule, else the control if every other
        arm is worse, else ``None``; ``split``: the sample ratio test of the shoppers per
        arm against the shares (``p_value``, ``mismatch``: :func:`.stats.sample_ratio_test`).
    """
    arms = list(experiment.arms.select_related("profile").order_by("position", "pk"))
    shown, followed = _counts(experiment, simulated)
    per_shopper = _per_shopper(experiment, simulated)
    rows = []
    for arm in arms:
        strips = shown.get(arm.pk, {}).get("strips", 0)
        row = {
            "arm": arm.name,
            "arm_id": arm.pk,
            "profile": arm.profile.name,
            "share": arm.share,
            "strips": strips,
            "products": shown.get(arm.pk, {}).get("products", 0),
            "simulated_strips": shown.get(arm.pk, {}).get("simulated_strips", 0),
            "shoppers": shown.get(arm.pk, {}).get("shoppers", 0),
        }
        for kind, key in (("click", "clicked"), ("cart", "carted"), ("purchase", "purchased")):
            row[key] = followed.get((arm.pk, kind), 0)
        for rate, key in RATES.items():
            row[f"{rate}_by_shopper"] = per_shopper.get((arm.pk, key), [])
            row[rate] = _rate(row[key], strips, row[f"{rate}_by_shopper"])
        rows.append(row)
    _compare(rows, experiment)
    for row in rows:
        for rate in RATES:
            del row[f"{rate}_by_shopper"]  # plain figures out: notebooks and JSON
    split = sample_ratio_test([row["shoppers"] for row in rows], [row["share"] for row in rows])
    return {
        "experiment": experiment.name,
        "status": experiment.status,
        "planned": experiment.min_impressions,
        "alpha": experiment.alpha,
        "arms": rows,
        "leader": _leader(rows),
        "split": {"p_value": split, "mismatch": split < SAMPLE_RATIO_P},
    }


def _compare(rows, experiment):
    if not rows:
        return
    control = rows[0]
    control["verdict"] = "control"
    for row in rows[1:]:
        row["vs_control"] = {}
        for rate, key in RATES.items():
            result = compare(
                (control[key], control["strips"]),
                (row[key], row["strips"]),
                planned=experiment.min_impressions,
                alpha=experiment.alpha,
                comparisons=len(rows) - 1,
                shoppers=(control[f"{rate}_by_shopper"], row[f"{rate}_by_shopper"]),
            )
            row["vs_control"][rate] = {
                "difference": result.difference,
                "z": result.z,
                "p_value": result.p_value,
                "threshold": result.threshold,
                "reached_plan": result.reached_plan,
                "verdict": result.verdict,
            }
        row["verdict"] = row["vs_control"]["ctr"]["verdict"]


def _leader(rows):
    if len(rows) < 2:
        return None
    better = [row for row in rows[1:] if row["verdict"] == "better"]
    if better:
        return max(better, key=lambda row: row["ctr"]["value"])["arm"]
    if all(row["verdict"] == "worse" for row in rows[1:]):
        return rows[0]["arm"]
    return None


def _percent(share):
    # Rounded first: number_format cuts the digits it does not show (0.643 was 64.2%).
    percent = round(share * 100, 1)
    return gettext("%(number)s%%") % {"number": number_format(percent, decimal_pos=1)}


def _interval(value, low, high):
    """A rate and its interval, as the chart writes them, in the active language."""
    return gettext("%(value)s [%(low)s, %(high)s]") % {
        "value": _percent(value),
        "low": _percent(low),
        "high": _percent(high),
    }


def _arm_name(row):
    return gettext("%(arm)s (%(profile)s)") % {"arm": row["arm"], "profile": row["profile"]}


def report_chart_svg(report, rate="ctr", width=560):
    """An inline SVG of one rate per arm: a bar for the rate, a whisker for its 95%
    interval, the arm and the figures as text. Safe to mark safe: every name is escaped."""
    rows = report["arms"]
    bar_height, gap, left, right = 22, 14, 150, 150
    height = 30 + len(rows) * (bar_height + gap)
    # An arm with no strip yet has no rate: its interval would be all of [0, 1].
    top = max([row[rate]["high"] for row in rows if row["strips"]] + [0.01])
    scale = (width - left - right) / top
    title = _("Click-through rate") if rate == "ctr" else _("Conversion rate")
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" aria-labelledby="chart-{rate}">',
        f'<title id="chart-{rate}">{escape(title)}</title>',
        f'<text x="0" y="16" font-size="13" font-weight="bold">{escape(title)}</text>',
    ]
    for i, row in enumerate(rows):
        y = 28 + i * (bar_height + gap)
        value, low, high = row[rate]["value"], row[rate]["low"], row[rate]["high"]
        colour = "#2b6cb0" if i == 0 else "#c05621"
        middle = y + bar_height / 2
        if not row["strips"]:
            parts += [
                f'<text x="0" y="{middle + 4:.1f}" font-size="12">{escape(_arm_name(row))}</text>',
                f'<text x="{left}" y="{middle + 4:.1f}" font-size="12">'
                f"{escape(_('no strips yet'))}</text>",
            ]
            continue
        parts += [
            f'<text x="0" y="{middle + 4:.1f}" font-size="12">{escape(_arm_name(row))}</text>',
            f'<rect x="{left}" y="{y}" width="{value * scale:.1f}" height="{bar_height}" '
            f'fill="{colour}" opacity="0.75"/>',
            f'<line x1="{left + low * scale:.1f}" x2="{left + high * scale:.1f}" '
            f'y1="{middle}" y2="{middle}" stroke="#1a202c" stroke-width="2"/>',
            f'<text x="{width - right + 8}" y="{middle + 4:.1f}" font-size="12">'
            f"{escape(_interval(value, low, high))}</text>",
        ]
    parts.append("</svg>")
    return "".join(parts)


def strip_outcomes(experiment):
    """Every strip of ``experiment`` in the order shown: ``(arm name, time, clicked,
    purchased)``, for curves of the rates as the data came in (how a rate settles, and
    why an early look misleads)."""
    clicked = set(
        ImpressionOutcome.objects.filter(
            impression__experiment=experiment, kind=ImpressionOutcome.Kind.CLICK
        ).values_list("impression__recommendation_id", flat=True)
    )
    bought = set(
        ImpressionOutcome.objects.filter(
            impression__experiment=experiment, kind=ImpressionOutcome.Kind.PURCHASE
        ).values_list("impression__recommendation_id", flat=True)
    )
    rows = (
        Impression.objects.filter(experiment=experiment, position=0)
        .order_by("created_at", "pk")
        .values_list("recommendation_id", "arm__name", "created_at")
    )
    return [(arm, when, rec in clicked, rec in bought) for rec, arm, when in rows]
